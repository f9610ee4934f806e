from __future__ import annotations

import math

from dmo.fidelity.validate import choose_mixtures, validate_search
from dmo.search.searches import search_config
from dmo.training.jobs import ensure_model


def test_validation_trains_mixtures_and_stores_fidelity(tiny_config, tiny_store, tiny_models, tiny_data, finished_search):
    search, evaluator = finished_search
    base, _ = tiny_models
    config = search_config(search)

    def train_here(specs):
        return [ensure_model(config, tiny_store, spec, base=base, data=tiny_data, show_progress=False) for spec in specs]

    summary = validate_search(tiny_store, search, config, mixtures=4, proxy=evaluator, train_mixtures=train_here)
    assert summary["mean_score"]["n"] == 4
    assert -1 <= summary["mean_score"]["spearman"] <= 1 or math.isnan(summary["mean_score"]["spearman"])
    stored = tiny_store.latest_validation(search.id, finished_only=True)
    assert stored is not None and len(stored.results) == 4
    assert {r.model_id for r in stored.results} <= {m.id for m in tiny_store.list_models(kind="mixture")}


def test_mixtures_are_the_best_trials_then_dirichlet_draws(tiny_store, finished_search):
    search, _ = finished_search
    chosen = choose_mixtures(tiny_store, search, 6, top=2, seed=1)
    assert len(chosen) == 6
    assert [t for _, t in chosen[:2]] == [t.id for t in tiny_store.best_trials(search.id, top_k=2)]
    assert all(t is None for _, t in chosen[2:])
    assert all(abs(sum(w) - 1) < 1e-9 for w, _ in chosen)


def test_proxies_are_scored_on_dev_only(finished_search):
    _, evaluator = finished_search
    assert evaluator.benchmarks and {b.split for b in evaluator.benchmarks} == {"dev"}
    result = evaluator.evaluate([1 / 3] * 3, limit=4)
    assert result.samples == 4 * len(evaluator.benchmarks)
