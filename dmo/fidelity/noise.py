"""How much of the real ranking's run-to-run noise a bigger dev split could remove.

Two models of one mixture, trained on different seeds and scored on the same dev split, differ by
training noise and by item noise: a score over n items that a model gets right with probability p
varies by p(1 − p)/n from which items were drawn alone (binomial). Set beside the measured run-to-run
variance, that bound says whether bigger dev splits (generation costs nothing) or less training noise
is what would raise the real ranking's test–retest (issue 19, item 1). The bound is exact for exact
match and approximate for ANLS, F1 and relaxed accuracy; it overstates the item share when two runs
fail the same items, so the share is capped at the measured run-to-run variance.

Reliability here is Pearson's (signal variance over signal plus one run's noise), the classical-test-
theory quantity that the test–retest Spearman ρ of ``dmo validate --repeats 2`` estimates by ranks.

Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NoiseComponents:
    """Variances (score points squared) of a one-run score over the validated mixtures."""

    signal: float  # between the mixtures, run noise removed: what a ranking can agree on
    run: float  # of one run around its mixture's mean (training seed and items together)
    item: float | None  # the part of ``run`` item sampling alone explains; None where the item count is unknown

    def reliability(self, items_factor: float = 1.0) -> float:
        """One run's reliability were every dev split ``items_factor`` times as large (``inf``: no item noise)."""
        if not self.signal + self.run > 0:
            return float("nan")
        item = 0.0 if self.item is None else self.item
        noise = self.run - item * (1.0 - 1.0 / items_factor)
        return max(self.signal, 0.0) / (max(self.signal, 0.0) + noise)


def item_variance(scores: Sequence[float], items: int) -> float:
    """Mean binomial variance, in score points squared, of scores (0–100) each over ``items`` items."""
    if items < 1:
        raise ValueError(f"a benchmark needs at least one item, got {items}")
    p = np.clip(np.asarray(scores, dtype=np.float64) / 100.0, 0.0, 1.0)
    return float(np.mean(p * (1.0 - p)) / items * 1e4)


def noise_components(first: Sequence[float], second: Sequence[float], item: float | None) -> NoiseComponents:
    """Components from two runs per mixture (``first[i]`` and ``second[i]`` score mixture i) and the item
    variance of one run (:func:`item_variance`, or a weighted sum of them for a mean over benchmarks)."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 3:
        raise ValueError("two runs of the same three or more mixtures are needed")
    run = float(np.mean((a - b) ** 2) / 2.0)
    # The two-run mean carries half a run's noise; take it out of the observed spread between mixtures.
    signal = float(np.var((a + b) / 2.0, ddof=1) - run / 2.0)
    return NoiseComponents(signal=signal, run=run, item=None if item is None else min(item, run))


def mean_item_variance(item: Mapping[str, float], weights: Mapping[str, float] | None = None) -> float:
    """Item variance of a (weighted) mean over benchmarks whose item noise is independent."""
    names = list(item)
    omega = np.asarray([1.0 if weights is None else float(weights.get(b, 0.0)) for b in names])
    values = np.asarray([item[b] for b in names])
    return float(omega**2 @ values / omega.sum() ** 2)
