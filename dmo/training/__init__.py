"""The one training loop."""

from __future__ import annotations

from dmo._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "train": "dmo.training.loop",
        "TrainingResult": "dmo.training.loop",
        "TrainingRun": "dmo.training.loop",
    },
)

__all__ = ["train", "TrainingResult", "TrainingRun"]
