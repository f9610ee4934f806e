"""A whole search on Ray: experts (cached or trained as tasks), then proxies on actors."""

from __future__ import annotations

from collections.abc import Callable

from dmo.config.schema import DmoConfig
from dmo.search.driver import SearchOutcome, run_search
from dmo.search.searches import create_search, proxy_source, search_config
from storage import ModelRecord, SearchRecord, Store
from workers.evaluators import RayPool
from workers.training import train_base_and_experts


def prepare_experts(
    config: DmoConfig, store: Store, *, on_done: Callable[[ModelRecord], None] | None = None, show_progress: bool = True
) -> tuple[ModelRecord, dict[str, ModelRecord]]:
    return train_base_and_experts(config, store.url, on_done=on_done, show_progress=show_progress)


def start_search(
    config: DmoConfig,
    store: Store,
    *,
    trials: int | None = None,
    sampler: str | None = None,
    seed: int | None = None,
    on_model: Callable[[ModelRecord], None] | None = None,
    show_progress: bool = True,
) -> SearchRecord:
    base, experts = prepare_experts(config, store, on_done=on_model, show_progress=show_progress)
    return create_search(store, config, base=base, experts=experts, trials=trials, sampler=sampler, seed=seed)


def run_on_ray(store: Store, search: SearchRecord, *, show_progress: bool = True) -> SearchOutcome:
    """Run or resume `search` with the evaluator pool its config asks for."""
    config = search_config(search)
    pool = RayPool(proxy_source(store, search, config), size=config.search.evaluators)
    try:
        return run_search(store, search, config, pool, show_progress=show_progress)
    finally:
        pool.close()
