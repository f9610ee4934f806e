"""Stand-in for torchaudio, whose PyPI build does not load beside the CPU torch pin: image recipes never call it."""


def load(*args, **kwargs):
    raise RuntimeError("torchaudio is not available in this environment")
