"""The one door from the command line into Ray.

The CLI calls these and nothing else of ``workers``; each wraps library
functions of ``dmo`` (which run and are tested without Ray) and decides only
where they run: training as Ray tasks, proxy scoring on Ray actors.
"""

from __future__ import annotations

from collections.abc import Callable

from dmo.config.schema import DmoConfig
from dmo.evaluation.lmms import check_tasks
from dmo.runtime import quiet_optuna
from dmo.search.driver import SearchOutcome, SearchProgress
from dmo.search.searches import create_search, proxy_source
from dmo.search.searches import run_search as run_search_with
from dmo.training.jobs import ModelSpec
from storage import ModelRecord, SearchRecord, Store
from workers.cluster import connect, shutdown
from workers.evaluators import RayPool
from workers.training import OnDone, OnStep, train_base_and_experts, train_models


def start_search(
    config: DmoConfig, store: Store, *, on_model: OnDone | None = None, on_step: OnStep | None = None
) -> SearchRecord:
    """Train (or find) the base and the experts on Ray, then create the search of ``config``."""
    check_tasks(config)  # an lmms-eval benchmark that cannot be scored fails now, not after the experts
    quiet_optuna()
    base, experts = train_base_and_experts(config, store.url, on_done=on_model, on_step=on_step)
    return create_search(store, config, base=base, experts=experts)


def run_search(
    store: Store, search: SearchRecord, *, on_progress: Callable[[SearchProgress], None] | None = None
) -> SearchOutcome:
    """Run or resume ``search`` with the evaluator pool its config asks for."""
    quiet_optuna()
    pool = RayPool(proxy_source(store, search), size=search.config.search.evaluators)
    try:
        return run_search_with(store, search, pool, on_progress=on_progress)
    finally:
        pool.close()


def train_mixture_models(
    config: DmoConfig, store: Store, specs: list[ModelSpec], base: ModelRecord, *, on_step: OnStep | None = None
) -> list[ModelRecord]:
    """Mixture-trained models for validation, in parallel on Ray."""
    return train_models(config, store.url, specs, base, on_step=on_step)


__all__ = ["connect", "run_search", "shutdown", "start_search", "train_mixture_models"]
