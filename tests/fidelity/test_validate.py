"""Validation on the tiny project: held-out mixtures, the search's picks apart, replicates, stored pairs."""

from __future__ import annotations

import numpy as np
import pytest

from dmo.fidelity.validate import ValidationPlan, plan_mixtures, validate_search
from dmo.training.jobs import ensure_model


def _trainer(search, store, base, data, trained):
    def train_here(specs):
        trained.extend(specs)
        return [ensure_model(search.config, store, spec, base=base, data=data) for spec in specs]

    return train_here


def test_held_out_mixtures_are_scored_apart_from_the_search_s_picks(tiny_store, tiny_models, tiny_data,
                                                                     finished_search):
    search, evaluator = finished_search
    base, _ = tiny_models
    trained = []
    plan = ValidationPlan(mixtures=3, seed=7, picks=1)
    summary = validate_search(tiny_store, search, plan=plan, proxy=evaluator,
                              train_mixtures=_trainer(search, tiny_store, base, tiny_data, trained))
    stored = tiny_store.latest_validation(search.id, finished_only=True)
    assert stored.config["protocol"] == "held-out" and stored.config["seed"] == 7
    assert [r.group for r in stored.results] == ["draw"] * 3 + ["pick"]
    (best,) = tiny_store.best_trials(search.id, top_k=1)
    assert stored.results[-1].trial_id == best.id
    trial_weights = [t.weights for t in tiny_store.trials(search.id)]
    assert not [r for r in stored.results[:3] if r.weights in trial_weights]  # held out of the search
    # each stored pair holds the proxy's score of that mixture, re-scored here, and the real model's dev score
    for result, spec in zip(stored.results, trained, strict=True):
        assert result.weights == spec.mixture.as_dict()
        proxy = evaluator.evaluate(list(spec.mixture.weights)).scores[search.metric]
        assert result.proxy_scores == pytest.approx(proxy)
        model = tiny_store.get_model(result.model_id)
        assert model.kind == "mixture" and result.real_scores == pytest.approx(
            {b: s[search.metric] for b, s in model.metrics["dev"]["benchmarks"].items()})
    # ρ is computed on the held-out draws only: the pick is reported apart
    from scipy.stats import kendalltau, spearmanr

    held = stored.results[:3]
    proxy_means = [np.mean(list(r.proxy_scores.values())) for r in held]
    real_means = [np.mean(list(r.real_scores.values())) for r in held]
    assert summary["mean_score"]["n"] == 3 and summary["held_out"] == 3
    assert summary["mean_score"]["spearman"] == pytest.approx(spearmanr(proxy_means, real_means).statistic,
                                                              nan_ok=True)
    assert summary["mean_score"]["kendall"] == pytest.approx(kendalltau(proxy_means, real_means).statistic,
                                                             nan_ok=True)
    (pick,) = summary["search_picks"]
    assert pick["trial"] == best.number and pick["best_held_out_real"] == pytest.approx(max(real_means))
    assert "retest" not in summary


def test_repeats_train_a_second_model_per_mixture_on_another_seed_and_measure_test_retest(
    tiny_store, tiny_models, tiny_data, finished_search,
):
    search, evaluator = finished_search
    base, _ = tiny_models
    trained = []
    summary = validate_search(tiny_store, search, plan=ValidationPlan(mixtures=2, seed=3, repeats=2, picks=0),
                              proxy=evaluator, train_mixtures=_trainer(search, tiny_store, base, tiny_data, trained))
    stored = tiny_store.latest_validation(search.id, finished_only=True)
    assert [(r.weights == stored.results[0].weights, r.replicate) for r in stored.results] == [
        (True, 0), (True, 1), (False, 0), (False, 1)]
    models = [tiny_store.get_model(r.model_id) for r in stored.results]
    assert len({m.id for m in models}) == 4
    assert [m.training["seed"] for m in models[:2]] == [search.config.project.seed, search.config.project.seed + 1]
    assert summary["retest"]["mean_score"]["n"] == 2
    # a mixture's real score is the mean of its two models; test–retest compares the two runs
    from dmo.fidelity.ranking import spearman

    def mean_score(result):
        return float(np.mean(list(result.real_scores.values())))

    runs = [[mean_score(r) for r in stored.results if r.replicate == k] for k in (0, 1)]
    proxies = [float(np.mean(list(r.proxy_scores.values()))) for r in stored.results if r.replicate == 0]
    expected = spearman(proxies, [(a + b) / 2 for a, b in zip(*runs, strict=True)])
    assert summary["mean_score"]["spearman"] == pytest.approx(expected, nan_ok=True)
    assert summary["retest"]["mean_score"]["spearman"] == pytest.approx(spearman(*runs), nan_ok=True)


def test_the_reference_plan_has_the_study_s_sets_then_the_picks(tiny_store, finished_search):
    search, _ = finished_search
    planned = plan_mixtures(tiny_store, search, ValidationPlan(protocol="reference", picks=2))
    groups = [p.group for p in planned]
    assert groups[:49] == ["pairs"] * 7 + ["triples"] * 21 + ["simplex"] * 21
    assert set(groups[49:]) <= {"pick"} and len(groups) <= 51


def test_proxies_are_scored_on_dev_only(finished_search):
    _, evaluator = finished_search
    assert evaluator.benchmarks and {b.split for b in evaluator.benchmarks} == {"dev"}
    result = evaluator.evaluate([1 / 3] * 3, limit=4)
    assert result.samples == 4 * len(evaluator.benchmarks)


def test_a_later_validation_judges_the_earlier_one_s_calibration_on_draws_it_was_not_fitted_on(
    tiny_store, tiny_models, tiny_data, finished_search,
):
    from dmo.fidelity.calibration import fit_on_validations, held_out_columns, judge_fitted

    search, evaluator = finished_search
    base, _ = tiny_models
    trainer = _trainer(search, tiny_store, base, tiny_data, [])
    before = tiny_store.latest_validation(search.id, finished_only=True)  # other tests may have validated
    first = validate_search(tiny_store, search, plan=ValidationPlan(mixtures=3, seed=21, picks=0), proxy=evaluator,
                            train_mixtures=trainer)
    if before is None:
        assert "calibration_transfer" not in first  # nothing earlier to fit on
    earlier = tiny_store.latest_validation(search.id, finished_only=True)
    assert before is None or earlier.id != before.id
    second = validate_search(tiny_store, search, plan=ValidationPlan(mixtures=3, seed=22, picks=0), proxy=evaluator,
                             train_mixtures=trainer)
    transfer = second["calibration_transfer"]
    pooled = tiny_store.validations(search.id, finished_only=True)[:-1]  # every finished one before the second
    assert pooled[-1].id == earlier.id and transfer["fitted_on_validations"] == [v.id for v in pooled]
    held_out = {tuple(sorted(r.weights.items())) for v in pooled for r in v.results if r.group != "pick"}
    assert transfer["fitted_on"] == len(held_out) >= 3
    assert transfer["judged_on"] == 3
    # the no-proxy baseline and the blend ride along (fitted on the same mixtures: their own tests below and in
    # tests/fidelity/test_mixture_law.py)
    assert "mixture_law" in transfer and "blend" in transfer
    # the same figures as fitting on the earlier validations' pairs and judging on the second's by hand
    latest = tiny_store.latest_validation(search.id, finished_only=True)
    assert {tuple(sorted(r.weights.items())) for r in latest.results}.isdisjoint(
        {tuple(sorted(r.weights.items())) for r in earlier.results})
    fitted = fit_on_validations(pooled)
    names = list(search.benchmarks)
    expected = judge_fitted(fitted.calibration, {b: [r.proxy_scores[b] for r in latest.results] for b in names},
                            {b: [r.real_scores[b] for r in latest.results] for b in names}, pooled=fitted)
    assert transfer["calibrated"]["spearman"] == pytest.approx(expected["calibrated"]["spearman"], nan_ok=True)
    # the band pick's width is the earlier map's own error, not one measured on the draws it judges
    assert transfer["calibrated"]["band"] == pytest.approx(expected["calibrated"]["band"])
    assert transfer["calibrated"]["band_regret"] == pytest.approx(expected["calibrated"]["band_regret"])
    assert transfer["raw"]["regret"] == pytest.approx(expected["raw"]["regret"])
    # a validation that redraws the first one's mixtures (same seed) has none left to judge on: they are in
    # the pooled fit though not in the latest validation's
    third = validate_search(tiny_store, search, plan=ValidationPlan(mixtures=3, seed=21, picks=0), proxy=evaluator,
                            train_mixtures=trainer)
    assert "calibration_transfer" not in third
    # an earlier validation stays readable by id once a later one exists, and its columns group runs per mixture
    assert tiny_store.get_validation(earlier.id).results == earlier.results
    mixtures, proxy, real = held_out_columns(earlier.results)
    assert len(mixtures) == 3 and all(len(column) == 3 for column in (*proxy.values(), *real.values()))
    for weights, real_general in zip(mixtures, real[names[0]], strict=True):
        runs = [r.real_scores[names[0]] for r in earlier.results if r.weights == weights]
        assert runs and real_general == pytest.approx(sum(runs) / len(runs))


def test_the_earlier_calibration_s_judge_fits_the_no_proxy_law_on_the_same_earlier_mixtures_only():
    from types import SimpleNamespace

    from dmo.fidelity.validate import _Planned, judge_earlier_calibration
    from dmo.mixture import Mixture

    domains = ("a", "b", "c")

    def real_of(w) -> float:  # a quadratic in the weights: a law fitted on it predicts unseen mixtures exactly
        return 10 * w[0] + 40 * w[1] + 20 * w[2] + 80 * w[0] * w[1]

    rng = np.random.default_rng(3)
    earlier_w, new_w = rng.dirichlet(np.ones(3), 8), rng.dirichlet(np.ones(3), 5)
    # the proxy gets every mixture backwards: a law fitted on proxy scores instead of real ones would rank at -1
    earlier = [SimpleNamespace(id=7, results=tuple(
        SimpleNamespace(weights=dict(zip(domains, w)), group="draw", proxy_scores={"x": -real_of(w)},
                        real_scores={"x": real_of(w)}) for w in earlier_w))]
    planned = [_Planned(Mixture.of(list(domains), list(w)), "draw") for w in new_w]
    proxy = [{"x": -real_of(w)} for w in new_w]
    real = {(i, 0): {"x": real_of(w)} for i, w in enumerate(new_w)}
    transfer = judge_earlier_calibration(earlier, planned, proxy, real, ["x"], ValidationPlan(mixtures=5, picks=0),
                                         domains=domains)
    law = transfer["mixture_law"]
    assert law["fitted_on"] == transfer["fitted_on"] == 8 and law["benchmarks"] == ["x"]
    assert law["spearman"] == pytest.approx(1.0) and law["regret"] == pytest.approx(0.0)
    assert transfer["raw"]["spearman"] == pytest.approx(-1.0)  # the proxy's own figure is not the law's
    # the backwards proxy pools into one flat block of the monotone map, so the blend ranks as the law does
    assert transfer["blend"]["spearman"] == pytest.approx(1.0) and transfer["blend"]["regret"] == pytest.approx(0.0)
    fewer = [SimpleNamespace(id=7, results=earlier[0].results[:5])]  # 5 mixtures for 6 coefficients
    short = judge_earlier_calibration(fewer, planned, proxy, real, ["x"], ValidationPlan(mixtures=5, picks=0),
                                      domains=domains)
    assert short["mixture_law"] is None and short["blend"] is None
