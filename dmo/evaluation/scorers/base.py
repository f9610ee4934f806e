"""The scorer interface: a decoded answer against its reference answer(s), aggregated over a benchmark.

A scorer is text in, points out. Most metrics are a mean of per-sample credit in [0, 1]
(:meth:`Scorer.sample`); set-level ones (POPE's F1) override :meth:`Scorer.aggregate`.
Variants are instances with other arguments, not subclasses (as merge methods are).
"""

from __future__ import annotations

from collections.abc import Sequence


class Scorer:
    """A benchmark metric over decoded text; ``name`` is what a config's ``metric:`` says."""

    name: str = ""
    description: str = ""

    def sample(self, prediction: str, references: Sequence[str]) -> float:
        """Credit in [0, 1] for one prediction against its reference answers."""
        raise NotImplementedError

    def aggregate(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
        """The benchmark's score in points (0–100): the mean of the samples' credit."""
        _check_lengths(predictions, references)
        if not predictions:
            return 0.0
        return 100.0 * sum(self.sample(p, r) for p, r in zip(predictions, references)) / len(predictions)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _check_lengths(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference sets")
    for index, refs in enumerate(references):
        if isinstance(refs, str) or not refs:
            raise ValueError(f"sample {index}: references are a non-empty list of strings, got {refs!r}")


def collapse(text: str) -> str:
    """Lower case, whitespace runs as one space, ends stripped: the normalisation every scorer starts from."""
    return " ".join(text.lower().split())
