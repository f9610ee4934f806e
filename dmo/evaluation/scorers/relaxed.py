"""Relaxed accuracy, ChartQA's metric (Masry et al., 2022; pix2struct's implementation).

A numeric answer is right within 5 % of a numeric reference (``|p − t| / |t| ≤ 0.05``); a
trailing ``%`` divides by 100 on either side. Otherwise — text, or a reference of 0, where a
relative tolerance is undefined — the answer must equal the reference, ignoring case. Best over
references.
"""

from __future__ import annotations

from collections.abc import Sequence

from dmo.evaluation.scorers.base import Scorer, collapse


def as_number(text: str) -> float | None:
    text = text.strip()
    try:
        return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


class RelaxedAccuracy(Scorer):
    name = "relaxed_accuracy"
    description = "numbers within 5 % of the reference count as right; other answers must match exactly"

    def __init__(self, tolerance: float = 0.05):
        self.tolerance = tolerance

    def sample(self, prediction: str, references: Sequence[str]) -> float:
        return float(any(self._right(prediction, reference) for reference in references))

    def _right(self, prediction: str, reference: str) -> bool:
        answer, target = as_number(prediction), as_number(reference)
        if answer is not None and target:  # target 0 or non-numeric: no relative tolerance
            return abs(answer - target) / abs(target) <= self.tolerance
        return collapse(prediction) == collapse(reference)
