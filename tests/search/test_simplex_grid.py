from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from dmo.search.grid import (
    coarse_to_fine_grid,
    grid_size,
    reference_study_grid,
    simplex_grid,
    simplex_grid_fractions,
)


@pytest.mark.parametrize(("num_domains", "count"), [(1, 1), (2, 9), (3, 45), (4, 165), (5, 495)])
def test_grid_counts(num_domains: int, count: int) -> None:
    assert len(simplex_grid(num_domains)) == count
    assert len(simplex_grid_fractions(num_domains)) == count
    assert grid_size(num_domains) == count


@pytest.mark.parametrize("num_domains", [2, 3, 4])
def test_points_sum_to_one_exactly_and_are_distinct_eighths(num_domains: int) -> None:
    points = simplex_grid_fractions(num_domains)
    assert all(sum(p) == 1 for p in points)
    assert all(x >= 0 and (x * 8).denominator == 1 for p in points for x in p)
    assert len(set(points)) == len(points)
    floats = simplex_grid(num_domains)
    np.testing.assert_array_equal(floats, np.array(points, dtype=np.float64))


def test_vertices_and_uniform_point_are_on_the_four_domain_grid() -> None:
    grid = {tuple(p) for p in simplex_grid(4).tolist()}
    for i in range(4):
        vertex = [0.0] * 4
        vertex[i] = 1.0
        assert tuple(vertex) in grid
    assert (0.25, 0.25, 0.25, 0.25) in grid


def test_other_denominators() -> None:
    assert len(simplex_grid(3, denominator=10)) == math.comb(12, 2)
    assert all(sum(p) == 1 for p in simplex_grid_fractions(3, denominator=10))
    with pytest.raises(ValueError):
        simplex_grid(0)


def test_reference_study_grid_matches_the_study() -> None:
    # 7 mixtures strictly between two experts, 21 using all of a triple.
    assert len(reference_study_grid(2)) == 7
    assert len(reference_study_grid(3, supports=(3,))) == 21
    four = reference_study_grid(4)
    assert len(four) == 6 * 7 + 4 * 21
    support = (four > 0).sum(axis=1)
    assert set(support.tolist()) == {2, 3}
    assert np.all(four.min(axis=1) >= 0) and np.allclose(four.sum(axis=1), 1.0)


def test_coarse_to_fine_has_the_same_points_coarsest_first() -> None:
    ordered = coarse_to_fine_grid(4)
    assert sorted(map(tuple, ordered.tolist())) == sorted(map(tuple, simplex_grid(4).tolist()))

    def level(point: np.ndarray) -> int:
        return max(Fraction(x).limit_denominator(8).denominator for x in point)

    levels = [level(p) for p in ordered]
    assert levels == sorted(levels)
    assert levels[:4] == [1, 1, 1, 1]  # the four experts
    assert levels.count(2) == 6  # the pairwise halves
