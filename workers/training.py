"""Train the base and one expert per domain as Ray tasks (retried, resumed, cached).

Progress reaches the caller through callbacks: ``on_step(name, step, total)``
while a model trains (read from the metrics file its training loop appends
to) and ``on_done(record)`` when it is ready. Drawing them is the CLI's job.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import ray

from dmo.config.schema import DmoConfig
from dmo.models.backends import backend_for
from dmo.runtime import compute_device, quiet_transformers, set_torch_threads
from dmo.training.jobs import ModelSpec, base_spec, ensure_model, expert_spec, stage_settings
from storage import ModelRecord, Store

# A worker that dies (OOM, preemption, kill) is retried; the loop resumes from
# its last resumable checkpoint. Errors raised by the code itself are not retried.
MAX_RETRIES = 3
POLL_S = 1.0

OnStep = Callable[[str, int, int], None]
OnDone = Callable[[ModelRecord], None]


def trainer_resources(config: DmoConfig) -> dict[str, float]:
    """What one training task asks Ray for: a CPU, and the GPUs the config gives trainers (none by default)."""
    return {"num_cpus": 1, "num_gpus": config.ray.gpus_per_trainer}


@ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)
def ensure_model_task(config: DmoConfig, store_url: str, spec: ModelSpec, base: ModelRecord | None) -> ModelRecord:
    set_torch_threads(config.training.threads)
    quiet_transformers()
    device = compute_device(config.ray.gpus_per_trainer, field="ray.gpus_per_trainer",
                            granted=ray.get_runtime_context().get_assigned_resources())
    store = Store.open(store_url, upgrade=False)
    try:
        return ensure_model(config, store, spec, base=base, device=device)
    finally:
        store.dispose()


def _submit(config: DmoConfig, store_url: str, spec: ModelSpec, base: ModelRecord | None) -> ray.ObjectRef:
    return ensure_model_task.options(**trainer_resources(config)).remote(config, store_url, spec, base)


def train_base_and_experts(
    config: DmoConfig, store_url: str, *, on_done: OnDone | None = None, on_step: OnStep | None = None
) -> tuple[ModelRecord, dict[str, ModelRecord]]:
    """The base first, then every expert in parallel (one CPU each)."""
    watch = _Watch(config, on_step, on_done)
    # A base that is the user's checkpoint, or one shipped with the project, is registered: no bar for it.
    trains_base = backend_for(config).trains_base and config.training.pretrained_base is None
    base_watch = watch if trains_base else _Watch(config, None, on_done)
    (base,) = base_watch.run([base_spec(config)], lambda spec: _submit(config, store_url, spec, None))
    specs = [expert_spec(config, d) for d in config.domain_names]
    experts = watch.run(specs, lambda spec: _submit(config, store_url, spec, base))
    return base, {record.domain: record for record in experts}


def train_models(
    config: DmoConfig, store_url: str, specs: list[ModelSpec], base: ModelRecord, *,
    on_step: OnStep | None = None, on_done: OnDone | None = None,
) -> list[ModelRecord]:
    """Several models from one base in parallel (validation's mixture models), in `specs` order."""
    return _Watch(config, on_step, on_done).run(
        specs, lambda spec: _submit(config, store_url, spec, base)
    )


class _Watch:
    """Waits for training tasks and reports their steps from the metrics files the loop appends to.

    The workers write `<workdir>/models/<name>-<key>.metrics.jsonl`; on a cluster
    without a shared filesystem no steps are reported, only finished models.
    """

    def __init__(self, config: DmoConfig, on_step: OnStep | None, on_done: OnDone | None):
        self.config = config
        self.models_dir = Path(config.project.workdir) / "models"
        self.on_step, self.on_done = on_step, on_done

    def run(self, specs: list[ModelSpec], submit: Callable[[ModelSpec], ray.ObjectRef]) -> list[ModelRecord]:
        refs = [submit(spec) for spec in specs]
        pending = dict(zip(refs, specs))
        totals = {spec.name: stage_settings(self.config, spec.kind).steps for spec in specs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in ready:
                spec = pending.pop(ref)
                record = ray.get(ref)
                if self.on_step:
                    self.on_step(spec.name, totals[spec.name], totals[spec.name])
                if self.on_done:
                    self.on_done(record)
            if self.on_step:
                for spec in pending.values():
                    self.on_step(spec.name, self._latest_step(spec.name), totals[spec.name])
        return ray.get(refs)

    def _latest_step(self, name: str) -> int:
        files = sorted(self.models_dir.glob(f"{name}-*.metrics.jsonl"), key=lambda p: p.stat().st_mtime)
        if not files:
            return 0
        try:
            with files[-1].open("rb") as handle:
                handle.seek(max(0, files[-1].stat().st_size - 400))
                last = handle.read().decode(errors="ignore").strip().splitlines()[-1]
            return int(json.loads(last)["step"])
        except (OSError, ValueError, KeyError, IndexError):
            return 0
