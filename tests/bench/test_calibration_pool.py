"""bench/calibration_pool.py never judges a calibration on a mixture any of its fit validations trained."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest


def _validation(vid: int, pairs: list[tuple[float, float, float]]) -> SimpleNamespace:
    """One validation of mixtures (w, proxy, real) over domains a/b, scored on one benchmark x."""
    return SimpleNamespace(id=vid, results=tuple(
        SimpleNamespace(weights={"a": w, "b": 1 - w}, group="draw", proxy_scores={"x": p}, real_scores={"x": r})
        for w, p, r in pairs))


def test_the_pooled_fit_counts_a_shared_mixture_once_and_never_judges_on_it():
    from calibration_pool import judge_on

    first = _validation(1, [(0.1, 1.0, 10.0), (0.5, 5.0, 50.0)])
    second = _validation(2, [(0.5, 5.0, 70.0), (0.9, 9.0, 90.0)])  # w 0.5 again: one pair, real the mean 60
    target = _validation(3, [(0.5, 5.0, 0.0), (0.2, 2.0, 20.0), (0.3, 3.0, 30.0), (0.7, 7.0, 70.0)])
    row = judge_on(target, [first, second], ["x"], None)
    assert row["fitted_on"] == [1, 2] and row["fit_pairs"] == 3
    assert row["judged_on"] == 3  # target's w 0.5 was fitted on: left out, so its real 0 cannot spoil ρ
    assert row["raw"]["spearman"] == 1.0 and row["calibrated"]["spearman"] == 1.0
    alone = judge_on(target, [second], ["x"], None)
    assert alone["judged_on"] == 3 and alone["fit_pairs"] == 2
    # fitted on second alone, proxies 2 and 3 sit below its first knot: flat, tied, so ρ drops below 1
    assert alone["calibrated"]["spearman"] < 1.0
    assert judge_on(_validation(4, [(0.5, 5.0, 1.0), (0.9, 9.0, 2.0)]), [first, second], ["x"], None) is None


def test_the_centred_map_keeps_apart_what_the_isotonic_step_ties():
    from calibration_pool import judge_on

    # fitted on one violation (proxy 2 and 3 pooled into one block): the step ties target proxies 2.2 and 2.8
    fit = _validation(1, [(0.1, 1.0, 10.0), (0.2, 2.0, 30.0), (0.3, 3.0, 20.0), (0.4, 4.0, 40.0)])
    target = _validation(2, [(0.6, 2.2, 21.0), (0.7, 2.8, 29.0), (0.8, 1.0, 5.0)])
    step = judge_on(target, [fit], ["x"], None)
    centred = judge_on(target, [fit], ["x"], None, method="centred")
    assert step["calibrated"]["spearman"] < 1.0 and centred["calibrated"]["spearman"] == 1.0
    # the step's plain pick is the first of the tie (real 21, loses 8); the band (the fit's own error on
    # the pooled block, ±5 -> RMS √12.5) holds both, and the raw proxy prefers 2.8 (real 29, the best)
    assert step["calibrated"]["regret"] == 8.0
    assert step["calibrated"]["band"] == pytest.approx(12.5 ** 0.5) and step["calibrated"]["band_regret"] == 0.0


def test_the_mixture_law_is_fitted_on_the_fit_validations_only():
    from calibration_pool import judge_on

    def law(w: float) -> float:  # real = 10 + 60 w - 40 w² on domains a/b: quadratic, so the law can be exact
        return 10 + 60 * w - 40 * w * w

    fit = _validation(1, [(w, 0.0, law(w)) for w in (0.1, 0.3, 0.5, 0.7, 0.9)])
    # the target's w 0.5 was fitted on and carries a real score the law cannot know: left out
    target = _validation(2, [(0.5, 0.0, -100.0), (0.2, 0.0, law(0.2)), (0.6, 0.0, law(0.6)), (0.8, 0.0, law(0.8))])
    row = judge_on(target, [fit], ["x"], None, domains=["a", "b"])
    assert row["judged_on"] == 3
    assert row["mixture_law"]["spearman"] == 1.0 and row["mixture_law"]["regret"] == 0.0
    assert judge_on(target, [_validation(3, [(0.1, 0.0, 1.0), (0.9, 0.0, 2.0)])], ["x"], None,
                    domains=["a", "b"])["mixture_law"] is None  # 2 pairs for 3 coefficients: too few, said so
    assert "mixture_law" not in judge_on(target, [fit], ["x"], None)


def test_the_leave_one_out_means_average_only_the_rows_fitted_on_all_other_validations():
    from calibration_pool import leave_one_out_means

    def row(judged, fitted_on, regret, band_regret):
        cell = {"spearman": 0.5, "regret": regret}
        return {"judged": judged, "fitted_on": fitted_on, "raw": cell, "centred": cell, "mixture_law": None,
                "calibrated": {**cell, "band_regret": band_regret}}

    rows = [row(1, [2], 9.0, 9.0), row(1, [2, 3], 1.0, 0.0), row(2, [1, 3], 2.0, 0.5), row(3, [1, 2], 0.0, 1.0),
            row(3, [2], 9.0, 9.0)]
    means = leave_one_out_means(rows, 3)
    assert means["judged"] == [1, 2, 3]  # single-validation fits (regret 9) are left out
    assert means["regret"]["calibrated"] == 1.0 and means["regret"]["band"] == 0.5
    assert math.isnan(means["regret"]["mixture_law"])  # too few pairs everywhere: no mean, not 0
    assert leave_one_out_means(rows[:1], 2) is None  # two validations: no row pools two
