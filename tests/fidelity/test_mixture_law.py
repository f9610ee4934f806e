"""The no-proxy baseline: a quadratic (Scheffé) mixture law of real scores in the weights."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from dmo.fidelity.mixture_law import MixtureLaw, judge_mixture_law, min_mixtures, scheffe_features
from dmo.fidelity.ranking import spearman

DOMAINS = ("a", "b", "c")


def _quadratic(w: dict[str, float]) -> float:
    """A law with every kind of term: linear, and a pair that helps (a·b) and one that hurts (b·c)."""
    return 10 * w["a"] + 40 * w["b"] + 20 * w["c"] + 80 * w["a"] * w["b"] - 60 * w["b"] * w["c"]


def _draws(n: int, seed: int) -> list[dict[str, float]]:
    return [dict(zip(DOMAINS, w)) for w in np.random.default_rng(seed).dirichlet(np.ones(len(DOMAINS)), n)]


def test_features_are_the_weights_then_every_pair_product_in_domain_order():
    features = scheffe_features([{"a": 0.2, "c": 0.8}], DOMAINS)  # b not named: weighs 0
    np.testing.assert_allclose(features, [[0.2, 0.0, 0.8, 0.0, 0.2 * 0.8, 0.0]])


def test_a_quadratic_truth_is_recovered_and_predicted_on_mixtures_it_never_saw():
    fit, held = _draws(20, 0), _draws(8, 1)
    law = MixtureLaw.fit(fit, {"x": [_quadratic(w) for w in fit]}, DOMAINS)
    np.testing.assert_allclose(law.coefficients["x"], [10, 40, 20, 80, 0, -60], atol=1e-8)
    np.testing.assert_allclose(law.predict(held)["x"], [_quadratic(w) for w in held], atol=1e-8)


def test_a_weight_on_a_domain_outside_the_law_is_an_error_not_a_dropped_term():
    with pytest.raises(ValueError, match="domain\\(s\\) c outside the law's a, b"):
        scheffe_features([{"a": 0.2, "b": 0.3, "c": 0.5}], ("a", "b"))


def test_too_few_mixtures_or_a_short_column_is_refused():
    with pytest.raises(ValueError, match="at least 6 mixtures"):
        MixtureLaw.fit(_draws(5, 3), {"x": [1.0] * 5}, DOMAINS)
    with pytest.raises(ValueError, match="'x' has 5 scores for 6 mixtures"):
        MixtureLaw.fit(_draws(6, 3), {"x": [1.0] * 5}, DOMAINS)


def _validation(mixtures: list[dict[str, float]], scores: dict[str, list[float]]) -> SimpleNamespace:
    return SimpleNamespace(results=tuple(
        SimpleNamespace(weights=w, group="draw", proxy_scores={b: 0.0 for b in scores},
                        real_scores={b: scores[b][i] for b in scores}) for i, w in enumerate(mixtures)))


def test_judging_names_its_benchmarks_weighs_them_and_refuses_what_it_cannot_judge_honestly():
    fit, held = _draws(8, 4), _draws(6, 5)
    # x follows a quadratic law, y is noise no law predicts: the benchmarks' weights decide which one is judged
    noise = np.random.default_rng(6)
    truth = {"x": [_quadratic(w) for w in fit], "y": list(noise.normal(size=8))}
    validation = _validation(fit, truth)
    real = {"x": [_quadratic(w) for w in held], "y": list(noise.normal(size=6)), "z": [0.0] * 6}
    row = judge_mixture_law([validation], held, real, domains=DOMAINS, weights={"x": 1.0, "y": 0.0})
    assert row["benchmarks"] == ["x", "y"] and row["fitted_on"] == 8  # z was never fitted: not judged
    assert row["spearman"] == pytest.approx(1.0) and row["regret"] == pytest.approx(0.0)
    assert judge_mixture_law([validation], held, real, domains=DOMAINS, weights={"x": 0.0, "y": 1.0})["spearman"] < 0.9
    assert min_mixtures(DOMAINS) == 6
    assert judge_mixture_law([_validation(fit[:5], {b: v[:5] for b, v in truth.items()})], held, real,
                             domains=DOMAINS) is None  # 5 mixtures for 6 coefficients
    with pytest.raises(ValueError, match="1 of the mixtures to judge on were fitted on"):
        judge_mixture_law([validation], [fit[0], *held], {b: [0.0] + v for b, v in real.items()}, domains=DOMAINS)
    with pytest.raises(ValueError, match="no benchmark"):
        judge_mixture_law([validation], held, {"z": [0.0] * 6}, domains=DOMAINS)


def test_the_blend_averages_the_calibrated_proxy_s_and_the_law_s_predictions():
    from dmo.fidelity.calibration import Calibration, fit_on_validations
    from dmo.fidelity.mixture_law import judge_blend
    from dmo.fidelity.ranking import mean_score_row

    fit, held = _draws(20, 7), _draws(6, 8)
    rng = np.random.default_rng(9)

    def validation(proxy: list[float], real: list[float]) -> SimpleNamespace:
        return SimpleNamespace(id=1, results=tuple(
            SimpleNamespace(weights=w, group="draw", proxy_scores={"x": p}, real_scores={"x": r})
            for w, p, r in zip(fit, proxy, real)))

    # the proxy says nothing (every score 0): the calibrated half is flat, so the blend ranks as the law does
    truth = [_quadratic(w) for w in fit]
    real = {"x": [_quadratic(w) for w in held]}
    flat = validation([0.0] * 20, truth)
    row = judge_blend(fit_on_validations([flat]), [flat], held, {"x": [0.0] * 6}, real, domains=DOMAINS)
    assert row["spearman"] == pytest.approx(1.0) and row["regret"] == pytest.approx(0.0) and row["benchmarks"] == ["x"]
    # both halves informative and imperfect: the blend ranks by their mean, not by either alone
    noisy_real = list(np.asarray(truth) + rng.normal(scale=2.0, size=20))
    proxy = list(rng.normal(size=20))
    fitted = validation(proxy, noisy_real)
    # the held-out real scores follow both halves' mean (plus noise), so neither half alone ranks them as well
    held_proxy = list(rng.normal(size=6))
    calibrated = Calibration.fit({"x": proxy}, {"x": noisy_real}).apply({"x": held_proxy})["x"]
    law = MixtureLaw.fit(fit, {"x": noisy_real}, DOMAINS).predict(held)["x"]
    held_real = {"x": list((calibrated + law) / 2 + rng.normal(scale=0.5, size=6))}
    blend = judge_blend(fit_on_validations([fitted]), [fitted], held, {"x": held_proxy}, held_real, domains=DOMAINS)
    expected = mean_score_row((calibrated + law) / 2, np.asarray(held_real["x"]))
    assert blend["kendall"] == pytest.approx(expected["kendall"]) and blend["regret"] == pytest.approx(expected["regret"])
    halves = [mean_score_row(half, np.asarray(held_real["x"]))["kendall"] for half in (calibrated, law)]
    assert all(k != pytest.approx(expected["kendall"]) for k in halves)  # so the check above tells them apart
    assert judge_blend(fit_on_validations([flat]), [SimpleNamespace(id=2, results=flat.results[:5])], held,
                       {"x": [0.0] * 6}, real, domains=DOMAINS) is None  # 5 pairs for 6 coefficients: no blend
    with pytest.raises(ValueError, match="fitted on"):
        judge_blend(fit_on_validations([flat]), [flat], [fit[0], *held[1:]], {"x": [0.0] * 6}, real, domains=DOMAINS)


@pytest.mark.parametrize("term", ["becker_h1", "becker_h2", "becker_h3"])
def test_every_blending_term_vanishes_on_the_edges_so_the_linear_terms_stay_the_vertex_scores(term):
    features = scheffe_features([{"a": 1.0}, {"a": 0.3, "c": 0.7}, {"b": 1.0}], DOMAINS, term)
    np.testing.assert_allclose(features[:, :3], [[1, 0, 0], [0.3, 0, 0.7], [0, 1, 0]])
    expected_ac = {"becker_h1": 0.3, "becker_h2": 0.3 * 0.7 / 1.0, "becker_h3": np.sqrt(0.21)}[term]
    np.testing.assert_allclose(features[:, 3:], [[0, 0, 0], [0, expected_ac, 0], [0, 0, 0]], atol=1e-12)


def test_leave_one_out_error_in_closed_form_matches_refitting_without_each_mixture():
    from dmo.fidelity.mixture_law import loo_squared_error

    mixtures = _draws(14, 7)
    features = scheffe_features(mixtures, DOMAINS, "becker_h3")
    y = np.array([_quadratic(w) for w in mixtures]) + np.random.default_rng(8).normal(size=14)
    errors = []
    for i in range(14):
        keep = np.arange(14) != i
        beta = np.linalg.lstsq(features[keep], y[keep], rcond=None)[0]
        errors.append((y[i] - features[i] @ beta) ** 2)
    assert loo_squared_error(features, y) == pytest.approx(np.mean(errors), rel=1e-9)


def test_select_picks_per_benchmark_the_form_that_generated_it_and_predicts_with_that_form():
    fit, held = _draws(30, 9), _draws(8, 10)
    h3 = np.array([[10, 40, 20, 80, 0, -60]], dtype=float)

    def becker(w_list):
        return (scheffe_features(w_list, DOMAINS, "becker_h3") @ h3.T)[:, 0]

    law = MixtureLaw.fit(fit, {"x": [_quadratic(w) for w in fit], "y": list(becker(fit))}, DOMAINS, form="select")
    assert (law.term("x"), law.term("y")) == ("quadratic", "becker_h3")
    predicted = law.predict(held)
    np.testing.assert_allclose(predicted["x"], [_quadratic(w) for w in held], atol=1e-8)
    np.testing.assert_allclose(predicted["y"], becker(held), atol=1e-8)
    # the quadratic law cannot follow the steep edges of √(w_i w_j): its held-out error is real
    assert np.abs(MixtureLaw.fit(fit, {"y": list(becker(fit))}, DOMAINS).predict(held)["y"] - becker(held)).max() > 1
    with pytest.raises(ValueError, match="unknown law form 'cubic'"):
        MixtureLaw.fit(fit, {"x": [0.0] * 30}, DOMAINS, form="cubic")


def test_the_logit_law_recovers_a_benchmark_that_saturates_and_never_predicts_past_its_bounds():
    fit, held = _draws(30, 11), _draws(40, 12)

    def saturating(w_list):  # a skill learnt from a small share of b, then flat just under 100 points
        z = (scheffe_features(w_list, DOMAINS) @ np.array([[-2.0, 4.0, -1.0, 12.0, 0.0, 4.0]]).T)[:, 0]
        return 100.0 / (1.0 + np.exp(-z))

    y = saturating(fit)
    assert 0.5 < y.min() and y.max() < 99.5, "inside the logit floor, so the fit can be exact"
    law = MixtureLaw.fit(fit, {"x": list(y)}, DOMAINS, link="logit")
    np.testing.assert_allclose(law.coefficients["x"], [-2, 4, -1, 12, 0, 4], atol=1e-6)
    np.testing.assert_allclose(law.predict(held)["x"], saturating(held), rtol=1e-6)
    # on points, a parabola cannot bend that hard: it overshoots the bound or misorders held-out mixtures
    on_points = MixtureLaw.fit(fit, {"x": list(y)}, DOMAINS).predict(held)["x"]
    assert on_points.max() > 100 or spearman(on_points, saturating(held)) < 0.99
    # a benchmark saturated within half a point (the demo's counting: 99.6–100) keeps its ranking
    near_full = [99.6 + 0.4 * w["b"] for w in fit]
    ranked = MixtureLaw.fit(fit, {"x": near_full}, DOMAINS, link="logit").predict(held)["x"]
    assert spearman(ranked, [99.6 + 0.4 * w["b"] for w in held]) > 0.9
    # scores at the bounds (a benchmark every model solves, or none) are floored, not infinite
    edge = MixtureLaw.fit(fit, {"x": [100.0] * 15 + [0.0] * 15}, DOMAINS, link="logit").predict(held)["x"]
    assert np.isfinite(edge).all() and (edge >= 0).all() and (edge <= 100).all()
    with pytest.raises(ValueError, match="unknown law link 'probit'"):
        MixtureLaw.fit(fit, {"x": list(y)}, DOMAINS, link="probit")
    with pytest.raises(ValueError, match="unknown law link 'probit'"):
        MixtureLaw(DOMAINS, {"x": np.zeros(6)}, link="probit")
