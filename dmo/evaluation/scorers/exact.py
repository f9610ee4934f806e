"""Exact match: the answer equals one reference after :func:`collapse` (case and whitespace only)."""

from __future__ import annotations

from collections.abc import Sequence

from dmo.evaluation.scorers.base import Scorer, collapse


class ExactMatch(Scorer):
    name = "exact_match"
    description = "1 if the answer equals a reference, ignoring case and runs of whitespace"

    def sample(self, prediction: str, references: Sequence[str]) -> float:
        answer = collapse(prediction)
        return float(any(answer == collapse(reference) for reference in references))
