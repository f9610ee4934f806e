"""Validation mixtures, bootstrap intervals, test–retest and calibration: pure functions on fixed data."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from dmo.fidelity.calibration import MAX_FIT, Calibration, centred_isotonic_fit, isotonic_fit, judge, judge_fitted
from dmo.fidelity.draws import held_out_draws, reference_protocol
from dmo.fidelity.ranking import kendall_interval, kendall_tau, retest_agreement, spearman, spearman_interval

NAMES = ("general", "ocr", "counting", "chart")


def test_the_reference_protocol_is_7_pairs_21_interior_triples_and_21_simplex_mixtures():
    planned = reference_protocol(NAMES, seed=0)
    groups = {g: [p.mixture.weights for p in planned if p.group == g] for g in ("pairs", "triples", "simplex")}
    assert [len(groups[g]) for g in groups] == [7, 21, 21] and len(planned) == 49
    assert sorted(groups["pairs"]) == sorted((k / 8, 1 - k / 8, 0.0, 0.0) for k in range(1, 8))
    eighths = {tuple(round(w * 8) for w in weights) for weights in groups["triples"]}
    assert eighths == {(i, j, 8 - i - j, 0) for i in range(1, 7) for j in range(1, 8 - i)}  # interior: all ≥ 1/8
    assert all(w[:3] == pytest.approx([x / 8 for x in e[:3]]) for w, e in zip(sorted(groups["triples"]),
                                                                               sorted(eighths), strict=True))
    assert groups["simplex"][-1] == (0.25,) * 4 and all(min(w) > 0 for w in groups["simplex"])
    assert reference_protocol(NAMES, seed=0) == planned and reference_protocol(NAMES, seed=1) != planned
    with pytest.raises(ValueError, match="three domains"):
        reference_protocol(NAMES[:2], seed=0)


def test_held_out_draws_are_seeded_distinct_and_never_a_mixture_to_avoid():
    draws = held_out_draws(NAMES, 20, seed=5)
    assert len(draws) == 20 and held_out_draws(NAMES, 20, seed=5) == draws
    assert all(sum(d.mixture.weights) == pytest.approx(1) and d.group == "draw" for d in draws)
    assert len({d.mixture.weights for d in draws}) == 20
    # a search that happened to try the first draw: it is skipped, the rest shift up
    avoided = held_out_draws(NAMES, 3, seed=5, avoid=[draws[0].mixture.weights])
    assert [d.mixture for d in avoided] == [d.mixture for d in draws[1:4]]


def test_bootstrap_intervals_contain_their_point_estimates():
    rng = np.random.default_rng(2)
    for _ in range(5):
        x = rng.normal(size=20)
        y = x + rng.normal(size=20)
        low, high = spearman_interval(x, y)
        assert low <= spearman(x, y) <= high
        low, high = kendall_interval(x, y)
        assert low <= kendall_tau(x, y) <= high


def test_test_retest_compares_the_two_runs_and_its_ceiling_is_the_root_of_their_agreement():
    first = {"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [5.0, 4.0, 3.0, 2.0, 1.0]}
    second = {"a": [1.0, 3.0, 2.0, 4.0, 5.0], "b": [5.0, 4.0, 3.0, 1.0, 2.0]}
    retest = retest_agreement(first, second)
    mean_first = np.mean([first["a"], first["b"]], axis=0)
    mean_second = np.mean([second["a"], second["b"]], axis=0)
    assert retest["mean_score"]["spearman"] == pytest.approx(spearman(mean_first, mean_second), nan_ok=True)
    assert retest["per_benchmark"]["a"]["spearman"] == pytest.approx(0.9)
    same = retest_agreement(first, first)["mean_score"]
    assert same["spearman"] == pytest.approx(1.0, nan_ok=True) or np.isnan(same["spearman"])
    noisy = retest_agreement({"a": [1.0, 2.0, 3.0, 4.0, 5.0]}, {"a": [2.0, 1.0, 4.0, 3.0, 5.0]})["mean_score"]
    assert noisy["ceiling"] == pytest.approx(np.sqrt(noisy["spearman"]))
    # both runs put the last mixture on top: no loss either way
    assert noisy["regret"] == 0.0
    # run 1 picks the fourth (4.0 on run 2, whose best is 6.0); run 2 the fifth (4.0 on run 1, best 5.0)
    crossed = retest_agreement({"a": [1.0, 2.0, 3.0, 5.0, 4.0]}, {"a": [1.0, 2.0, 3.0, 4.0, 6.0]})
    assert crossed["mean_score"]["regret"] == pytest.approx(((6.0 - 4.0) + (5.0 - 4.0)) / 2)
    assert crossed["per_benchmark"]["a"]["regret"] == crossed["mean_score"]["regret"]  # one benchmark: its mean
    assert same["regret"] == 0.0
    assert retest["per_benchmark"]["b"]["regret"] == 0.0  # both runs put the first mixture on top


def test_centred_isotonic_fit_puts_one_knot_per_pooled_block_at_its_mean_proxy_score():
    xs, ys = centred_isotonic_fit([1, 2, 3, 4], [1, 3, 2, 4])  # 2 and 3 pool at 2.5
    assert list(xs) == [1, 2.5, 4] and list(ys) == [1, 2.5, 4]
    xs, ys = centred_isotonic_fit([1, 1, 2, 3, 5], [0, 2, 4, 3, 6])  # 1 twice (mean 1), then 2 and 3 pool at 3.5
    assert list(xs) == [1, 2.5, 5] and list(ys) == [1, 3.5, 6]
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=30), rng.normal(size=30)
    xs, ys = centred_isotonic_fit(x, y)
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) >= 0)
    assert xs[0] == x.min() and xs[-1] == x.max()  # the data's ends are kept: nothing inside is extrapolated
    # the same blocks as the isotonic fit: every knot's value is one of its block means
    assert set(np.round(ys, 9)) <= set(np.round(isotonic_fit(x, y)[1], 9))
    # equal neighbours pool too: scores are accuracies on finite items, so ties are common, and two knots
    # at one height would be the flat stretch this fit exists to remove
    xs, ys = centred_isotonic_fit([1, 2, 3, 4], [1, 2, 2, 3])
    assert list(xs) == [1, 2.5, 4] and list(ys) == [1, 2, 3]
    assert list(isotonic_fit([1, 2, 3, 4], [1, 2, 2, 3])[1]) == [1, 2, 2, 3]  # the step's values unchanged


def test_isotonic_fit_is_the_monotone_least_squares_fit():
    xs, ys = isotonic_fit([1, 2, 3, 4], [1, 3, 2, 4])
    assert list(xs) == [1, 2, 3, 4] and list(ys) == [1, 2.5, 2.5, 4]
    xs, ys = isotonic_fit([3, 1, 2, 1], [0, 5, 1, 1])  # tied x pooled, then violators pooled
    assert list(xs) == [1, 2, 3] and list(ys) == pytest.approx([7 / 4] * 3)


def test_a_calibration_is_judged_only_on_mixtures_it_was_not_fitted_on_and_fixes_saturation():
    # counting: the real model saturates by w = 0.2, the proxy climbs slowly; general trades off linearly.
    w = np.linspace(0, 1, 12)
    proxy = {"counting": list(40 * w), "general": list(50 * (1 - w))}
    real = {"counting": list(np.where(w >= 0.18, 100.0, 0.0)), "general": list(50 * (1 - w))}
    fit = [0, 2, 5, 8, 11]
    result = judge(proxy, real, fit=fit)
    assert set(result["judged_on"]).isdisjoint(fit) and sorted(result["judged_on"] + fit) == list(range(12))
    assert result["calibrated"]["spearman"] > result["raw"]["spearman"]
    assert result["calibrated"]["regret"] < result["raw"]["regret"]
    # the fitted map is monotone, so it never reorders mixtures within a benchmark
    calibration = Calibration.fit({b: [proxy[b][i] for i in fit] for b in proxy},
                                  {b: [real[b][i] for i in fit] for b in real})
    assert np.all(np.diff(calibration.apply({"counting": sorted(proxy["counting"])})["counting"]) >= 0)
    with pytest.raises(ValueError, match=f"1..{MAX_FIT}"):
        judge(proxy, real, fit=list(range(MAX_FIT + 1)))


def test_a_calibration_fitted_on_one_draw_is_judged_on_another_with_an_interval():
    def world(w):
        return ({"counting": list(40 * w), "general": list(50 * (1 - w))},
                {"counting": list(np.where(w >= 0.18, 100.0, 0.0)), "general": list(50 * (1 - w))})

    fitted_proxy, fitted_real = world(np.array([0.0, 0.1, 0.3, 0.6, 1.0]))
    calibration = Calibration.fit(fitted_proxy, fitted_real)
    proxy, real = world(np.random.default_rng(5).uniform(0, 1, 15))
    result = judge_fitted(calibration, proxy, real)
    assert result["calibrated"]["spearman"] > result["raw"]["spearman"]
    for row in (result["raw"], result["calibrated"]):
        low, high = row["spearman_90"]
        assert low <= row["spearman"] <= high
    with pytest.raises(ValueError, match="calibrated"):
        judge_fitted(calibration, {"ocr": [1.0, 2.0]}, {"ocr": [1.0, 2.0]})


@pytest.mark.parametrize("pair", list(combinations(range(4), 2)))
def test_held_out_draws_of_different_seeds_differ(pair):
    a, b = pair
    assert held_out_draws(NAMES, 2, seed=a) != held_out_draws(NAMES, 2, seed=b)


def test_pooled_validations_calibrate_only_the_benchmarks_every_pair_scored():
    from types import SimpleNamespace

    from dmo.fidelity.calibration import fit_on_validations, held_out_columns, mixture_key

    def validation(id_, *rows):
        return SimpleNamespace(id=id_, results=tuple(
            SimpleNamespace(weights={"a": w, "b": 1 - w}, group=group, proxy_scores=proxy, real_scores=real)
            for w, group, proxy, real in rows))

    older = validation(1, (0.2, "draw", {"x": 1.0, "y": 2.0}, {"x": 10.0, "y": 20.0}),
                       (0.4, "draw", {"x": 2.0, "y": 3.0}, {"x": 20.0, "y": 30.0}))
    newer = validation(2, (0.4, "draw", {"x": 2.0}, {"x": 40.0}),  # the same mixture again, without y
                       (0.9, "pick", {"x": 9.0}, {"x": 0.0}))  # a pick is never fitted on
    mixtures, proxy, real = held_out_columns([*older.results, *newer.results])
    assert len(mixtures) == 2 and set(proxy) == set(real) == {"x"}  # y is missing from one run: no column
    assert real["x"] == [10.0, 30.0]  # w 0.4 once, at the mean of its two runs
    pooled = fit_on_validations([older, newer])
    assert set(pooled.calibration.knots) == {"x"} and pooled.validation_ids == (1, 2)
    assert pooled.mixtures == {mixture_key({"a": 0.2, "b": 0.8}), mixture_key({"a": 0.4, "b": 0.6})}  # not the pick


def test_the_band_pick_lets_the_raw_proxy_choose_only_among_near_ties_of_the_calibrated_top():
    from dmo.fidelity.calibration import band_pick

    calibrated = [50.0, 49.6, 49.0, 45.0]
    raw = [10.0, 12.0, 30.0, 99.0]
    assert band_pick(calibrated, raw, 0.0) == 0  # no band: the calibrated argmax
    assert band_pick(calibrated, raw, 0.5) == 1  # 49.6 is within 0.5 of the top, 49.0 is not
    assert band_pick(calibrated, raw, 1.0) == 2  # the raw proxy's best inside the band, never the far 45.0
    assert band_pick(calibrated, raw, 10.0) == 3
    assert band_pick([50.0, 50.0], [7.0, 7.0], 0.0) == 0  # the first on ties, as the plain pick
    with pytest.raises(ValueError, match="non-negative"):
        band_pick(calibrated, raw, -1.0)
    with pytest.raises(ValueError, match="paired"):
        band_pick(calibrated, raw[:3], 1.0)
    with pytest.raises(ValueError, match="finite"):  # argmax would choose a nan raw mean inside the band
        band_pick(calibrated, [np.nan, 12.0, 30.0, 99.0], 1.0)
    with pytest.raises(ValueError, match="no mixtures"):
        band_pick([], [], 1.0)


def test_the_band_is_the_pooled_map_s_own_error_on_the_mean_score_of_the_pairs_it_was_fitted_on():
    from types import SimpleNamespace

    from dmo.fidelity.calibration import fit_on_validations

    # real x rises with proxy x except one violation, which the isotonic map pools (error ±1 there); y is
    # fitted exactly
    rows = [(0.1, 1.0, 10.0, 5.0), (0.3, 2.0, 22.0, 6.0), (0.5, 3.0, 20.0, 7.0), (0.7, 4.0, 30.0, 8.0)]
    validation = SimpleNamespace(id=1, results=tuple(
        SimpleNamespace(weights={"a": w, "b": 1 - w}, group="draw", proxy_scores={"x": p, "y": p},
                        real_scores={"x": r, "y": y}) for w, p, r, y in rows))
    pooled = fit_on_validations([validation])
    # mean-score errors: 0, -0.5, +0.5, 0 (half of x's ∓1) -> RMS sqrt(0.125)
    assert pooled.band() == pytest.approx(np.sqrt(0.125))
    assert pooled.band({"x": 1.0, "y": 0.0}) == pytest.approx(np.sqrt(0.5))  # x alone: errors 0, -1, +1, 0
    assert pooled.band(names=["x"]) == pytest.approx(np.sqrt(0.5))  # only the benchmarks a judge scores


def test_the_band_order_puts_the_band_first_by_raw_proxy_then_the_rest_by_calibrated_mean():
    from dmo.fidelity.calibration import band_order

    calibrated = [49.0, 50.0, 49.6, 45.0, 47.0]
    raw = [30.0, 10.0, 12.0, 99.0, 5.0]
    assert band_order(calibrated, raw, 0.0) == [1, 2, 0, 4, 3]  # the plain calibrated order
    assert band_order(calibrated, raw, 1.0) == [0, 2, 1, 4, 3]  # 49.0, 50.0 and 49.6 inside, by raw
    assert band_order([], [], 1.0) == []
