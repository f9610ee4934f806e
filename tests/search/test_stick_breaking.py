from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dmo.errors import MergeError
from dmo.search.simplex import u_to_weights, weights_to_u

DRAWS = 20_000


def _draw_weights(num_domains: int, seed: int) -> np.ndarray:
    u = np.random.default_rng(seed).random((DRAWS, num_domains - 1))
    return np.stack([u_to_weights(row) for row in u])


@pytest.mark.parametrize("num_domains", [2, 3, 4, 6])
def test_uniform_u_gives_uniform_simplex(num_domains: int) -> None:
    weights = _draw_weights(num_domains, seed=1234)
    # Every marginal of Dirichlet(1, …, 1) is Beta(1, K−1).
    for i in range(num_domains):
        result = stats.kstest(weights[:, i], stats.beta(1, num_domains - 1).cdf)
        assert result.pvalue > 0.01, (i, result)
    # Joint shape: compare with numpy's Dirichlet on statistics that mix coordinates.
    reference = np.random.default_rng(99).dirichlet(np.ones(num_domains), size=DRAWS)
    for statistic in (lambda w: w.max(axis=1), lambda w: w[:, 0] * w[:, -1], lambda w: w[:, -1]):
        result = stats.ks_2samp(statistic(weights), statistic(reference))
        assert result.pvalue > 0.01, result


def test_distribution_check_detects_a_biased_map() -> None:
    # The naive map (K−1 uniforms, last weight = 1 − Σ, clipped and renormalised)
    # is not uniform; the same KS test must reject it, or the test above proves nothing.
    u = np.random.default_rng(1234).random((DRAWS, 3))
    naive = np.column_stack([u, np.clip(1.0 - u.sum(axis=1), 0.0, None)])
    naive /= naive.sum(axis=1, keepdims=True)
    assert stats.kstest(naive[:, 0], stats.beta(1, 3).cdf).pvalue < 0.01


@pytest.mark.parametrize("num_domains", [2, 3, 4, 6, 10])
def test_round_trips_on_interior_points(num_domains: int) -> None:
    rng = np.random.default_rng(num_domains)
    for u in rng.uniform(0.001, 0.999, size=(200, num_domains - 1)):
        np.testing.assert_allclose(weights_to_u(u_to_weights(u)), u, rtol=0, atol=1e-9)
    for w in rng.dirichlet(np.ones(num_domains), size=200):
        np.testing.assert_allclose(u_to_weights(weights_to_u(w)), w, rtol=0, atol=1e-9)


def test_weights_are_on_the_simplex_including_the_corners_of_the_cube() -> None:
    rng = np.random.default_rng(0)
    corners = np.array(np.meshgrid(*[[0.0, 1.0]] * 4)).reshape(4, -1).T
    for u in np.vstack([corners, rng.random((100, 4))]):
        w = u_to_weights(u)
        assert w.shape == (5,)
        assert np.all(w >= 0.0)
        assert abs(w.sum() - 1.0) < 1e-12


def test_u_zero_is_the_last_expert_and_u0_one_the_first() -> None:
    np.testing.assert_array_equal(u_to_weights([0.0, 0.0, 0.0]), [0, 0, 0, 1])
    np.testing.assert_array_equal(u_to_weights([1.0, 0.3, 0.7]), [1, 0, 0, 0])


@pytest.mark.parametrize(
    "w",
    [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0.5, 0, 0.5, 0], [0, 0.25, 0, 0.75]],
)
def test_boundary_weights_invert_deterministically(w: list[float]) -> None:
    u = weights_to_u(w)
    assert np.all((u >= 0.0) & (u <= 1.0))
    np.testing.assert_allclose(u_to_weights(u), w, atol=1e-12)
    np.testing.assert_array_equal(weights_to_u(w), u)
    # After the stick is used up the undefined breaks are pinned to 0.
    if w[0] == 1:
        np.testing.assert_array_equal(u, [1.0, 0.0, 0.0])


def test_uniform_mixture_has_a_known_preimage() -> None:
    # v_i = 1/(K−i+1) for the uniform mixture, so u_i = 1 − (1 − v_i)^{K−i}.
    k = 4
    expected = [1 - (1 - 1 / (k - i + 1)) ** (k - i) for i in range(1, k)]
    np.testing.assert_allclose(weights_to_u(np.full(k, 1 / k)), expected, atol=1e-15)


def test_u_outside_the_box_is_refused() -> None:
    with pytest.raises(ValueError):
        u_to_weights([0.5, 1.5])
    with pytest.raises(ValueError):
        u_to_weights([np.nan])


@pytest.mark.parametrize(("w", "fragment"), [([0.5, -0.5], "non-negative"), ([np.nan, 1.0], "NaN"),
                                             ([0.0, 0.0], "all zero")])
def test_weights_are_checked_by_the_one_weight_validator(w: list[float], fragment: str) -> None:
    with pytest.raises(MergeError, match=fragment):
        weights_to_u(w)
