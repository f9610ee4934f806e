from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dmo.fidelity.ranking import (
    average_ranks,
    benchmark_mean,
    fidelity_summary,
    kendall_tau,
    pick_in_top_k,
    spearman,
    spearman_interval,
    top1_regret,
)

# Fixed paired data, with ties on one side, both sides, and none.
CASES = [
    ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]),
    ([1, 2, 2, 3, 4, 4, 4, 5], [2, 1, 3, 3, 5, 4, 4, 6]),
    ([3.5, 1.0, 2.0, 2.0, 9.0, 0.5], [10, 20, 20, 30, 30, 5]),
    ([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6], [40.0, 42.5, 41.0, 50.0, 39.0, 48.0, 49.0]),
    ([1, 1, 1, 2, 2, 2], [3, 1, 2, 6, 5, 4]),
]


@pytest.mark.parametrize(("x", "y"), CASES)
def test_spearman_matches_scipy(x: list[float], y: list[float]) -> None:
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


@pytest.mark.parametrize(("x", "y"), CASES)
def test_kendall_tau_b_matches_scipy(x: list[float], y: list[float]) -> None:
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


def test_random_data_matches_scipy_too() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = rng.integers(0, 6, size=30).astype(float)  # many ties
        y = x + rng.normal(0, 2, size=30).round()
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
        assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


def test_average_ranks_match_scipy() -> None:
    x = [3.0, 1.0, 3.0, 2.0, 3.0, 0.0]
    np.testing.assert_array_equal(average_ranks(x), stats.rankdata(x))


def test_perfect_and_reversed_orders() -> None:
    x = [1.0, 5.0, 2.0, 8.0]
    y = [10.0, 50.0, 20.0, 80.0]
    assert spearman(x, y) == pytest.approx(1.0) and kendall_tau(x, y) == pytest.approx(1.0)
    assert spearman(x, y[::-1]) < 1.0
    assert spearman(x, [-v for v in y]) == pytest.approx(-1.0)
    assert kendall_tau(x, [-v for v in y]) == pytest.approx(-1.0)


def test_constant_input_is_nan_not_a_crash() -> None:
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau([1, 2, 3], [4, 4, 4]))
    assert math.isnan(spearman([1], [2]))


def test_regret_is_zero_when_the_proxy_picks_the_real_best() -> None:
    assert top1_regret([0.1, 0.9, 0.3], [50.0, 70.0, 60.0]) == 0.0
    assert top1_regret([0.9, 0.1, 0.3], [50.0, 70.0, 60.0]) == pytest.approx(20.0)


def test_regret_takes_the_first_of_tied_proxy_picks() -> None:
    # Proxy ties mixtures 0 and 2: the search would keep the first one seen.
    assert top1_regret([0.9, 0.1, 0.9], [50.0, 55.0, 70.0]) == pytest.approx(20.0)
    assert top1_regret([0.9, 0.1, 0.9], [70.0, 55.0, 50.0]) == 0.0


def test_pick_in_top_k() -> None:
    proxy = [0.5, 0.9, 0.1, 0.2]
    real = [80.0, 70.0, 60.0, 90.0]  # proxy picks the third-best real mixture
    assert not pick_in_top_k(proxy, real, 1)
    assert not pick_in_top_k(proxy, real, 2)
    assert pick_in_top_k(proxy, real, 3)
    assert pick_in_top_k(proxy, real, 10)
    # A pick tied with the k-th best counts as in the top k.
    assert pick_in_top_k([0.1, 0.9, 0.2], [80.0, 70.0, 70.0], 2)
    with pytest.raises(ValueError):
        pick_in_top_k(proxy, real, 0)


def test_mismatched_or_non_finite_input_is_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        top1_regret([1.0, math.nan], [1.0, 2.0])


def test_fidelity_summary_rows() -> None:
    proxy = {"ocr": [0.1, 0.5, 0.3, 0.9], "chart": [0.2, 0.2, 0.2, 0.2], "maps": [1, 2, 3, 4]}
    real = {"ocr": [40.0, 60.0, 50.0, 70.0], "chart": [30.0, 35.0, 20.0, 25.0]}
    summary = fidelity_summary(proxy, real)

    ocr = summary["per_benchmark"]["ocr"]
    assert ocr["n"] == 4
    assert ocr["spearman"] == pytest.approx(1.0)
    assert ocr["kendall"] == pytest.approx(1.0)
    assert ocr["regret"] == 0.0 and ocr["in_top_1"] and ocr["in_top_3"]

    chart = summary["per_benchmark"]["chart"]
    assert math.isnan(chart["spearman"]) and math.isnan(chart["kendall"])
    assert chart["regret"] == pytest.approx(5.0)  # constant proxy picks mixture 0 (30 vs 35)
    assert not chart["in_top_1"] and chart["in_top_3"]

    # Averages skip nan correlations and turn in_top_k into fractions.
    average = summary["average"]
    assert average["spearman"] == pytest.approx(1.0)
    assert average["regret"] == pytest.approx(2.5)
    assert average["in_top_1"] == pytest.approx(0.5)

    # The mean score ranks mixtures by their average over benchmarks.
    mean_real = np.mean([real["ocr"], real["chart"]], axis=0)
    mean_proxy = np.mean([proxy["ocr"], proxy["chart"]], axis=0)
    assert summary["mean_score"]["spearman"] == pytest.approx(
        stats.spearmanr(mean_proxy, mean_real).statistic
    )

    notes = " ".join(summary["notes"])
    assert "maps: scored for proxies only" in notes
    assert "chart: all proxy scores are equal" in notes
    assert "maps" not in summary["per_benchmark"]


def test_fidelity_summary_needs_a_shared_benchmark_and_equal_lengths() -> None:
    with pytest.raises(ValueError, match="share no benchmark"):
        fidelity_summary({"a": [1, 2]}, {"b": [1, 2]})
    with pytest.raises(ValueError, match="different numbers of mixtures"):
        fidelity_summary({"a": [1, 2], "b": [1, 2, 3]}, {"a": [2, 1], "b": [3, 2, 1]})


def test_spearman_interval_is_a_point_for_a_perfect_order_and_shrinks_with_more_mixtures() -> None:
    assert spearman_interval(range(10), [x**3 for x in range(10)]) == (1.0, 1.0)
    rng = np.random.default_rng(1)
    widths = []
    for n in (10, 200):
        x = rng.normal(size=n)
        y = x + rng.normal(size=n)  # ρ about 0.7
        low, high = spearman_interval(x, y)
        assert -1.0 <= low <= spearman(x, y) <= high <= 1.0
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


def test_fidelity_summary_keeps_the_interval_of_the_mean_score_ranking() -> None:
    summary = fidelity_summary({"a": [1.0, 2.0, 3.0, 4.0]}, {"a": [1.0, 2.0, 4.0, 3.0]})
    low, high = summary["mean_score"]["spearman_90"]
    assert low <= summary["mean_score"]["spearman"] <= high


def test_the_mean_score_is_weighted_as_the_search_weighted_it():
    """A search whose objective weights benchmarks is validated on the same weighted mean: with all the
    weight on one benchmark, the mean-score ranking is that benchmark's (here the opposite of the plain mean's)."""
    proxy = {"a": [1.0, 2.0, 3.0, 4.0], "b": [40.0, 30.0, 20.0, 10.0]}
    real = {"a": [1.5, 2.5, 3.5, 4.5], "b": [10.0, 20.0, 30.0, 40.0]}  # b ranked the other way round
    weighted = fidelity_summary(proxy, real, weights={"a": 1.0, "b": 0.0})
    assert weighted["mean_score"]["spearman"] == weighted["per_benchmark"]["a"]["spearman"] == 1.0
    assert weighted["mean_score"]["regret"] == 0.0
    assert fidelity_summary(proxy, real)["mean_score"]["spearman"] == -1.0
    np.testing.assert_allclose(benchmark_mean(real, ["a", "b"], {"a": 3.0, "b": 1.0}),
                               [(3 * 1.5 + 10) / 4, (3 * 2.5 + 20) / 4, (3 * 3.5 + 30) / 4, (3 * 4.5 + 40) / 4])
