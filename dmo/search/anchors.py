"""Anchor subsets: the samples of each search benchmark a search scores its proxies on (pure math).

A rule picks ⌈fraction·n⌉ of a benchmark's n samples, from the benchmark sizes alone or from the
per-sample credit of the base and the experts, scored in full before the search:

- ``random`` (the default): a seeded uniform draw, which needs only the benchmark sizes (so no
  reference model is scored for it). Its subset mean is an unbiased estimate of the full-split score.
- ``disagreement``: the samples on which the base and the experts disagree most (variance of their
  credit; for right/wrong credit p(1−p), largest where half are right), ties and the remainder in
  seeded random order. The idea is that samples all endpoints answer alike cannot separate the
  mixtures between them. Measured on the demo (bench/subset_scoring.py), it ranks held-out
  proxies *worse* than a random subset of the same size: a proxy's credit is not a blend of its
  endpoints' (merging interferes on samples every expert gets right), and those samples leave the
  subset. It is kept for worlds where it helps, and so the comparison stays in the bench.

- ``stratified``: a proportional stratified draw. Samples are grouped by how many of the reference
  models (base and experts) get them right, 0 … K + 1, and each group gives its share of the
  anchors (largest remainders, at least the rounding), drawn at random within it. The subset mean
  stays an unbiased estimate of the full-split score, and no draw over- or under-represents the
  samples every endpoint gets right, or wrong, or splits on. Measured on the demo (2026-12-03,
  bench/subset_scoring.py), it ranks 40 held-out proxies like random anchors do (median ρ 0.891
  against 0.889) with a worse worst draw (0.608 against 0.811): the demo's noise is within the
  strata, not between them. Random stays the default.

Each benchmark draws from its own generator, keyed by the seed and the benchmark's name, so adding
a benchmark does not move another's anchors.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np

Credit = Mapping[str, Sequence[Sequence[float]]]  # benchmark -> model -> sample -> credit in [0, 1]
Sizes = Mapping[str, int]  # benchmark -> how many samples it has
CreditRule = Callable[[Credit, float, int], dict[str, tuple[int, ...]]]
SizeRule = Callable[[Sizes, float, int], dict[str, tuple[int, ...]]]


def anchor_count(size: int, fraction: float) -> int:
    """How many of a benchmark's ``size`` samples its anchor subset holds (at least one)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    return max(1, min(size, math.ceil(fraction * size - 1e-9)))


def _rng(seed: int, benchmark: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(benchmark.encode())])


def _table(name: str, rows: Sequence[Sequence[float]], models: int) -> np.ndarray:
    table = np.asarray(rows, dtype=np.float64)  # (models, samples)
    if table.ndim != 2 or table.shape[0] < models or table.shape[1] == 0:
        raise ValueError(f"benchmark {name}: need the credit of at least {models} model(s) on at least one sample")
    return table


def random_anchors(sizes: Sizes, fraction: float, seed: int) -> dict[str, tuple[int, ...]]:
    """A seeded uniform draw from each benchmark."""
    anchors = {}
    for name, size in sizes.items():
        if size < 1:
            raise ValueError(f"benchmark {name}: no samples to draw anchors from")
        picked = _rng(seed, name).choice(size, size=anchor_count(size, fraction), replace=False)
        anchors[name] = tuple(sorted(int(i) for i in picked))
    return anchors


def disagreement_anchors(credit: Credit, fraction: float, seed: int) -> dict[str, tuple[int, ...]]:
    """The samples whose credit varies most across the models, ties in seeded random order."""
    anchors = {}
    for name, rows in credit.items():
        table = _table(name, rows, 2)
        spread = table.var(axis=0)
        tie_break = _rng(seed, name).permutation(table.shape[1])  # a random rank per sample, used among equals
        order = np.lexsort((tie_break, -spread))  # largest spread first
        anchors[name] = tuple(sorted(int(i) for i in order[: anchor_count(table.shape[1], fraction)]))
    return anchors


def stratified_anchors(credit: Credit, fraction: float, seed: int) -> dict[str, tuple[int, ...]]:
    """Anchors allocated to strata of equal reference credit in proportion to their size."""
    anchors = {}
    for name, rows in credit.items():
        table = _table(name, rows, 1)
        size = table.shape[1]
        count = anchor_count(size, fraction)
        strata = np.rint(table.sum(axis=0) * 2).astype(int)  # half-credit steps: scores in [0, 1] stay apart
        keys, members = np.unique(strata, return_inverse=True)
        sizes = np.bincount(members, minlength=len(keys))
        quota = sizes * count / size
        take = np.floor(quota).astype(int)
        remainder = count - int(take.sum())
        take[np.argsort(-(quota - take), kind="stable")[:remainder]] += 1  # largest remainders
        rng = _rng(seed, name)
        picked = []
        for stratum, n in enumerate(take):
            pool = np.flatnonzero(members == stratum)
            picked.extend(int(i) for i in rng.choice(pool, size=int(n), replace=False))
        anchors[name] = tuple(sorted(picked))
    return anchors


# name -> (the rule, whether it reads the credit of the base and the experts; else the benchmark sizes)
ANCHOR_RULES: dict[str, tuple[SizeRule | CreditRule, bool]] = {
    "random": (random_anchors, False),
    "disagreement": (disagreement_anchors, True),
    "stratified": (stratified_anchors, True),
}
