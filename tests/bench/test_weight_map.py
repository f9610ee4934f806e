"""bench/weight_map.py chooses α on the fit validation alone and judges the others with it."""

from __future__ import annotations


def test_alpha_is_chosen_on_the_fit_validation_and_its_calibration_judged_elsewhere_only():
    from weight_map import judge_alphas

    real = {1: {"x": [1.0, 2.0, 3.0, 4.0]}, 2: {"x": [1.0, 2.0, 3.0, 4.0]}}
    right, wrong = [10.0, 20.0, 30.0, 40.0], [40.0, 30.0, 20.0, 10.0]
    # α 0.5 ranks validation 1 (fit) right and validation 2 wrong; α 1 the other way round.
    proxies = {1.0: {1: {"x": wrong}, 2: {"x": right}}, 0.5: {1: {"x": right}, 2: {"x": wrong}}}
    rows, chosen = judge_alphas(proxies, real, 1, ["x"], None)
    assert chosen == 0.5  # validation 2's better ρ at α 1 must not choose α
    assert rows["0.5"]["1"]["spearman"] == 1.0 and rows["0.5"]["2"]["spearman"] == -1.0
    assert "calibrated_from_fit" not in rows["0.5"]["1"]  # never judged on the pairs it was fitted on
    # fitted on validation 1 at α 0.5 (proxy 10..40 -> real 1..4), applied to validation 2's reversed proxies
    assert rows["0.5"]["2"]["calibrated_from_fit"]["spearman"] == -1.0
