"""Validate a search: do proxies rank mixtures like models trained on them?

Mixtures are the search's best few plus seeded Dirichlet(1) draws. Each gets
a proxy score (merged in memory, as in the search) and a real score (a model
trained on the mixture: same base, budget and schedule as the experts). How
models are trained is passed in, so this runs with or without Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from dmo.config.schema import DmoConfig
from dmo.evaluation import benchmarks_for, evaluate
from dmo.fidelity.ranking import fidelity_summary
from dmo.mixture import Mixture
from dmo.models.backends import backend_for
from dmo.search.pool import Evaluator
from dmo.search.proxy import SEARCH_SPLIT
from dmo.training.jobs import ModelSpec, mixture_spec
from storage import ModelRecord, SearchRecord, Store

TrainMixtures = Callable[[list[ModelSpec]], list[ModelRecord]]


def choose_mixtures(store: Store, search: SearchRecord, count: int, *, top: int = 3, seed: int = 0) -> list[tuple[Mixture, int | None]]:
    """(mixture, trial id) pairs: the best `top` trials, then Dirichlet(1) draws up to `count`."""
    names = search.domains
    chosen: list[tuple[Mixture, int | None]] = [
        (Mixture.of(names, t.weights), t.id) for t in store.best_trials(search.id, top_k=min(top, count))
    ]
    rng = np.random.default_rng(seed)
    while len(chosen) < count:
        chosen.append((Mixture.of(names, [float(x) for x in rng.dirichlet(np.ones(len(names)))]), None))
    return chosen


def validate_search(
    store: Store,
    search: SearchRecord,
    *,
    mixtures: int,
    proxy: Evaluator,
    train_mixtures: TrainMixtures,
    seed: int = 0,
) -> dict:
    config = search.config
    metric = search.metric
    chosen = choose_mixtures(store, search, mixtures, seed=seed)
    validation = store.create_validation(search.id, config={"mixtures": mixtures, "seed": seed, "metric": metric})
    try:
        proxy_scores = [proxy.evaluate(list(m.weights)).scores[metric] for m, _ in chosen]
        models = train_mixtures([mixture_spec(m) for m, _ in chosen])
        real_scores = [_real_scores(config, model, metric) for model in models]
        for (mixture, trial_id), model, p, r in zip(chosen, models, proxy_scores, real_scores):
            store.record_mixture_result(validation.id, mixture=mixture, trial_id=trial_id,
                                        model_id=model.id, proxy_scores=p, real_scores=r)
        names = list(search.domains)
        summary = fidelity_summary(
            {b: [p[b] for p in proxy_scores] for b in names},
            {b: [r[b] for r in real_scores] for b in names},
        )
        summary["metric"] = metric
        store.finish_validation(validation.id, summary=summary)
        return summary
    except BaseException as error:
        store.fail_validation(validation.id, f"{type(error).__name__}: {error}")
        raise


def _real_scores(config: DmoConfig, model: ModelRecord, metric: str) -> dict[str, float]:
    """Dev scores of a trained mixture model (the same benchmarks the proxies saw)."""
    dev = (model.metrics or {}).get("dev")
    if dev:
        return {b: float(s[metric]) for b, s in dev["benchmarks"].items()}
    from dmo.data.prepared import prepare_data

    data = prepare_data(config)
    backend = backend_for(config)
    result = evaluate(backend.load(Path(model.checkpoint_uri)), data, benchmarks_for(data.names, SEARCH_SPLIT),
                      backend=backend,
                      max_new_tokens=config.evaluation.max_new_tokens, batch_size=config.evaluation.batch_size,
                      limit=config.evaluation.dev_limit)
    return result.scores(metric)


def summary_rows(summary: dict) -> Sequence[tuple[str, dict]]:
    return [("mean score", summary["mean_score"]), *summary["per_benchmark"].items()]
