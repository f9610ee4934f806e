"""Train the base and one expert per domain as Ray tasks (retried, resumed, cached)."""

from __future__ import annotations

from collections.abc import Callable

import ray

from dmo.config.schema import DmoConfig
from dmo.training.jobs import ModelSpec, base_spec, ensure_model, expert_spec
from storage import ModelRecord, Store

# A worker that dies (OOM, preemption, kill) is retried; the loop resumes from
# its last resumable checkpoint. Errors raised by the code itself are not retried.
MAX_RETRIES = 3


@ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)
def ensure_model_task(config: DmoConfig, store_url: str, spec: ModelSpec, base: ModelRecord | None) -> ModelRecord:
    store = Store.open(store_url, upgrade=False)
    try:
        return ensure_model(config, store, spec, base=base, show_progress=False)
    finally:
        store.dispose()


def train_base_and_experts(
    config: DmoConfig, store_url: str, *, on_done: Callable[[ModelRecord], None] | None = None
) -> tuple[ModelRecord, dict[str, ModelRecord]]:
    """The base first, then every expert in parallel (one CPU each)."""
    base = ray.get(ensure_model_task.remote(config, store_url, base_spec(config), None))
    if on_done:
        on_done(base)
    pending = {
        ensure_model_task.remote(config, store_url, expert_spec(config, domain), base): domain
        for domain in config.domain_names
    }
    experts: dict[str, ModelRecord] = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            domain = pending.pop(ref)
            experts[domain] = ray.get(ref)
            if on_done:
                on_done(experts[domain])
    return base, {d: experts[d] for d in config.domain_names}


def train_models(config: DmoConfig, store_url: str, specs: list[ModelSpec], base: ModelRecord) -> list[ModelRecord]:
    """Several models from one base in parallel (validation's mixture models)."""
    return ray.get([ensure_model_task.remote(config, store_url, spec, base) for spec in specs])
