"""Regular grids on the mixture simplex (the reference study's 1/8 grid).

The reference study scored mixtures on a grid of multiples of 1/8: for a pair
of domains the 7 points that are not pure experts, for a triple the 21 points
with all three weights non-zero. :func:`simplex_grid` returns the whole grid
(vertices included, C(d+K−1, K−1) points); :func:`reference_study_grid` the
subset with a given number of non-zero weights. Points are built from integer
numerators, so they sum to 1 exactly as fractions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from fractions import Fraction

import numpy as np

DEFAULT_DENOMINATOR = 8


def _check(num_domains: int, denominator: int) -> None:
    if num_domains < 1:
        raise ValueError(f"a simplex grid needs at least one domain, got {num_domains}")
    if denominator < 1:
        raise ValueError(f"the grid denominator must be a positive integer, got {denominator}")


def _compositions(total: int, parts: int) -> Iterator[tuple[int, ...]]:
    """Every way to write ``total`` as ``parts`` non-negative integers, first part largest first."""
    if parts == 1:
        yield (total,)
        return
    for first in range(total, -1, -1):
        for rest in _compositions(total - first, parts - 1):
            yield (first, *rest)


def grid_numerators(
    num_domains: int, denominator: int = DEFAULT_DENOMINATOR
) -> list[tuple[int, ...]]:
    """Integer numerators n (Σn = denominator) of every grid point, lexicographically descending."""
    _check(num_domains, denominator)
    return list(_compositions(denominator, num_domains))


def simplex_grid_fractions(
    num_domains: int, denominator: int = DEFAULT_DENOMINATOR
) -> list[tuple[Fraction, ...]]:
    """The grid as exact fractions (for checks that must not depend on rounding)."""
    return [
        tuple(Fraction(n, denominator) for n in point)
        for point in grid_numerators(num_domains, denominator)
    ]


def simplex_grid(num_domains: int, denominator: int = DEFAULT_DENOMINATOR) -> np.ndarray:
    """All points of the K-simplex whose weights are multiples of 1/denominator, shape (n, K).

    For K = 4 and the default 1/8 step that is C(11, 3) = 165 points, the four
    pure experts included.
    """
    numerators = np.asarray(grid_numerators(num_domains, denominator), dtype=np.float64)
    return numerators.reshape(-1, num_domains) / denominator


def grid_size(num_domains: int, denominator: int = DEFAULT_DENOMINATOR) -> int:
    """Number of points of :func:`simplex_grid`, without building it."""
    _check(num_domains, denominator)
    return math.comb(denominator + num_domains - 1, num_domains - 1)


def reference_study_grid(
    num_domains: int,
    denominator: int = DEFAULT_DENOMINATOR,
    supports: Sequence[int] = (2, 3),
) -> np.ndarray:
    """Grid points with exactly ``s`` non-zero weights for some s in ``supports``.

    With the defaults this is the reference study's candidate set: per pair of
    domains the 7 mixtures strictly between the two experts, per triple the 21
    mixtures using all three (for K = 4: 6·7 + 4·21 = 126 points).
    """
    wanted = set(supports)
    kept = [
        point
        for point in grid_numerators(num_domains, denominator)
        if sum(1 for n in point if n > 0) in wanted
    ]
    return np.asarray(kept, dtype=np.float64).reshape(-1, num_domains) / denominator


def coarse_to_fine_grid(num_domains: int, denominator: int = DEFAULT_DENOMINATOR) -> np.ndarray:
    """The points of :func:`simplex_grid`, coarsest first.

    A point's level is the smallest denominator that expresses it (vertices 1,
    then halves, quarters, eighths). Warm-starting in this order covers the
    simplex evenly even when the trial budget stops before the grid ends.
    """
    points = grid_numerators(num_domains, denominator)

    def level(point: tuple[int, ...]) -> int:
        return denominator // math.gcd(denominator, *point)

    ordered = sorted(points, key=level)  # stable: lexicographic within a level
    return np.asarray(ordered, dtype=np.float64).reshape(-1, num_domains) / denominator
