"""A project's data made ready for a model: samples, the model's encoder, encoded splits.

How samples become token ids and image tensors belongs to the model backend
(dmo's own model trains a tokenizer on the project's text; a Hugging Face
checkpoint brings its tokenizer, processor and chat template): the backend
hands over a :class:`SampleEncoder`. Splits are encoded lazily: a worker that
trains one expert encodes one domain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from dmo.config.schema import DmoConfig
from dmo.data.encoding import EncodedSplit
from dmo.data.sample import DomainData, Sample


class SampleEncoder(Protocol):
    """A model's way from samples to inputs (see dmo.models.backends)."""

    pad_id: int
    eos_id: int

    def encode(self, samples: Sequence[Sample]) -> EncodedSplit: ...

    def fingerprint(self) -> bytes:
        """What identifies the encoding (the tokenizer, the processor): part of every cache key."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Generated answer ids (up to the end of the turn) as text, for the text scorers."""
        ...

    def save(self, directory: Path) -> None:
        """Write what a checkpoint needs to encode like this (tokenizer, processor files)."""
        ...


class PreparedData:
    def __init__(self, domains: dict[str, DomainData], encoder: SampleEncoder):
        self.domains = domains
        self.encoder = encoder
        self.benchmarks: dict[str, tuple[Sample, ...]] = {}  # declared benchmarks, loaded by role when asked
        self._encoded: dict[tuple[str, str], EncodedSplit] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.domains)

    @property
    def pad_id(self) -> int:
        return self.encoder.pad_id

    @property
    def eos_id(self) -> int:
        return self.encoder.eos_id

    def encoded(self, domain: str, split: str) -> EncodedSplit:
        key = (domain, split)
        if key not in self._encoded:
            self._encoded[key] = self.encoder.encode(self.domains[domain].split(split))
        return self._encoded[key]

    def add_benchmarks(self, benchmarks: dict[str, tuple[Sample, ...]]) -> None:
        self.benchmarks.update(benchmarks)

    def encoded_benchmark(self, name: str) -> EncodedSplit:
        key = ("\0benchmark", name)  # no domain is named with a NUL
        if key not in self._encoded:
            self._encoded[key] = self.encoder.encode(self.benchmarks[name])
        return self._encoded[key]

    def fingerprint(self) -> str:
        """Hash of every domain sample and the encoder (benchmarks train nothing): part of every model's
        cache key."""
        digest = hashlib.sha256(data_hash(self.domains).encode())
        digest.update(self.encoder.fingerprint())
        return digest.hexdigest()


def data_hash(domains: dict[str, DomainData]) -> str:
    digest = hashlib.sha256()
    for name, data in domains.items():
        digest.update(f"{name}:{data.content_hash()}\n".encode())
    return digest.hexdigest()


def prepare_data(config: DmoConfig, *, domains: dict[str, DomainData] | None = None) -> PreparedData:
    """The project's domains with the encoder of its model backend."""
    from dmo.data.domains import load_domains
    from dmo.models.backends import backend_for

    domains = domains if domains is not None else load_domains(config)
    return PreparedData(domains, backend_for(config).encoder(config, domains))


def prepare_for_checkpoint(config: DmoConfig, checkpoint: Path) -> PreparedData:
    """The project's domains encoded the way a checkpoint encodes (its own tokenizer and processor),
    for scoring that checkpoint: another project's tokenizer would give wrong scores silently."""
    from dmo.data.domains import load_domains
    from dmo.models.backends import backend_of_checkpoint

    backend = backend_of_checkpoint(checkpoint)
    return PreparedData(load_domains(config), backend.checkpoint_encoder(config, Path(checkpoint)))


__all__ = ["PreparedData", "SampleEncoder", "data_hash", "prepare_data", "prepare_for_checkpoint"]
