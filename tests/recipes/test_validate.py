from __future__ import annotations

import pytest

from dmo.fidelity.validate import choose_mixtures, validate_search
from dmo.training.jobs import ensure_model


def test_validation_trains_mixtures_and_stores_fidelity(tiny_config, tiny_store, tiny_models, tiny_data, finished_search):
    search, evaluator = finished_search
    base, _ = tiny_models
    trained = []

    def train_here(specs):
        trained.extend(specs)
        return [ensure_model(search.config, tiny_store, spec, base=base, data=tiny_data) for spec in specs]

    summary = validate_search(tiny_store, search, mixtures=4, proxy=evaluator, train_mixtures=train_here)
    stored = tiny_store.latest_validation(search.id, finished_only=True)
    assert stored is not None and len(stored.results) == 4 and summary["mean_score"]["n"] == 4
    # each stored pair holds the proxy's score of that mixture, re-scored here, and the real model's dev score
    for result, spec in zip(stored.results, trained):
        assert result.weights == spec.mixture.as_dict()
        proxy = evaluator.evaluate(list(spec.mixture.weights)).scores[search.metric]
        assert result.proxy_scores == pytest.approx(proxy)
        model = tiny_store.get_model(result.model_id)
        assert model.kind == "mixture" and result.real_scores == pytest.approx(
            {b: s[search.metric] for b, s in model.metrics["dev"]["benchmarks"].items()})
    # the summary's mean-score ρ is the Spearman correlation of the stored pairs
    from scipy.stats import spearmanr

    proxy_means = [sum(r.proxy_scores.values()) / len(r.proxy_scores) for r in stored.results]
    real_means = [sum(r.real_scores.values()) / len(r.real_scores) for r in stored.results]
    expected = spearmanr(proxy_means, real_means).statistic
    assert summary["mean_score"]["spearman"] == pytest.approx(expected, nan_ok=True)


def test_mixtures_are_the_best_trials_then_dirichlet_draws(tiny_store, finished_search):
    search, _ = finished_search
    chosen = choose_mixtures(tiny_store, search, 6, top=2, seed=1)
    assert len(chosen) == 6
    assert [t for _, t in chosen[:2]] == [t.id for t in tiny_store.best_trials(search.id, top_k=2)]
    assert all(t is None for _, t in chosen[2:])
    assert all(abs(sum(m.weights) - 1) < 1e-9 for m, _ in chosen)


def test_proxies_are_scored_on_dev_only(finished_search):
    _, evaluator = finished_search
    assert evaluator.benchmarks and {b.split for b in evaluator.benchmarks} == {"dev"}
    result = evaluator.evaluate([1 / 3] * 3, limit=4)
    assert result.samples == 4 * len(evaluator.benchmarks)
