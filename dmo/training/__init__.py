"""The one training loop."""

from __future__ import annotations

from dmo.training.loop import TrainingResult, TrainingRun, train

__all__ = ["TrainingResult", "TrainingRun", "train"]
