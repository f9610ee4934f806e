"""The predicted optimum: a Scheffé quadratic fitted on the trials, stored when the search ends, shown as a
prediction by `dmo best`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dmo.search.surrogate import predict_optimum, scheffe_terms

DOMAINS = ("a", "b", "c")


def _response(w: np.ndarray) -> np.ndarray:
    # Interior optimum: a and b each help, together they help more, c only dilutes them.
    return 40 * w[:, 0] + 30 * w[:, 1] + 10 * w[:, 2] + 60 * w[:, 0] * w[:, 1]


def test_the_argmax_of_a_quadratic_response_is_recovered_from_its_trials():
    w = np.random.default_rng(0).dirichlet(np.ones(3), size=30)
    prediction = predict_optimum(DOMAINS, w, _response(w))
    # The true optimum on the line c = 0: d/da [40a + 30(1-a) + 60a(1-a)] = 0 at a = 7/12.
    assert prediction.weights["a"] == pytest.approx(0.6, abs=0.026)  # the 1/20 grid point nearest 7/12
    assert prediction.weights["c"] == 0.0 and prediction.r2 == pytest.approx(1.0)
    assert prediction.value == pytest.approx(_response(np.array([[0.6, 0.4, 0.0]]))[0], rel=1e-6)
    assert prediction.value >= prediction.best_evaluated - 1e-9 and prediction.trials == 30


def test_too_few_finite_trials_give_no_prediction():
    w = np.random.default_rng(1).dirichlet(np.ones(3), size=8)
    values = _response(w)
    assert scheffe_terms(w).shape == (8, 6)
    assert predict_optimum(DOMAINS, w, values) is not None  # 6 terms + 2 spare
    values[0] = np.nan  # a failed trial's missing objective is left out, not fitted
    assert predict_optimum(DOMAINS, w, values) is None


def test_a_finished_search_stores_its_prediction_and_dmo_best_shows_it(tiny_config, tiny_store, tiny_models,
                                                                       tiny_data, dmo_cli):
    from search_support import configured

    from dmo.search.pool import LocalPool
    from dmo.search.proxy import ProxyEvaluator
    from dmo.search.searches import create_search, proxy_source, run_search

    base, experts = tiny_models
    config = configured(tiny_config, search__trials=9, search__sampler="random")
    search = create_search(tiny_store, config, base=base, experts=experts)
    run_search(tiny_store, search, LocalPool(ProxyEvaluator(proxy_source(tiny_store, search), data=tiny_data)))
    stored = tiny_store.get_search(search.id).prediction
    trials = tiny_store.trials(search.id, state="complete")
    assert stored["trials"] == len(trials) == 9 and stored["best_evaluated"] == max(t.value for t in trials)
    assert sum(stored["weights"].values()) == pytest.approx(1.0) and set(stored["weights"]) == set(search.domains)
    args = ("best", "--search", str(search.id), "--store-url", tiny_store.url)
    assert json.loads(dmo_cli(*args, "--json").out)["prediction"] == stored
    shown = " ".join(dmo_cli(*args).out.split())
    assert "predicted optimum (not evaluated; scheffe_quadratic fitted on 9 trials" in shown
