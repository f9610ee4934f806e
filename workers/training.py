"""Train the base and one expert per domain as Ray tasks (retried, resumed, cached)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import ray
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from dmo.config.schema import DmoConfig
from dmo.training.jobs import ModelSpec, base_spec, ensure_model, expert_spec, stage_settings
from storage import ModelRecord, Store

# A worker that dies (OOM, preemption, kill) is retried; the loop resumes from
# its last resumable checkpoint. Errors raised by the code itself are not retried.
MAX_RETRIES = 3
POLL_S = 1.0


@ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)
def ensure_model_task(config: DmoConfig, store_url: str, spec: ModelSpec, base: ModelRecord | None) -> ModelRecord:
    store = Store.open(store_url, upgrade=False)
    try:
        return ensure_model(config, store, spec, base=base, show_progress=False)
    finally:
        store.dispose()


def train_base_and_experts(
    config: DmoConfig,
    store_url: str,
    *,
    on_done: Callable[[ModelRecord], None] | None = None,
    show_progress: bool = True,
) -> tuple[ModelRecord, dict[str, ModelRecord]]:
    """The base first, then every expert in parallel (one CPU each)."""
    with _TrainingProgress(config, enabled=show_progress) as progress:
        (base,) = progress.run({ensure_model_task.remote(config, store_url, base_spec(config), None): base_spec(config)}, on_done)
        specs = {ensure_model_task.remote(config, store_url, expert_spec(config, d), base): expert_spec(config, d) for d in config.domain_names}
        experts = {record.domain: record for record in progress.run(specs, on_done)}
    return base, {d: experts[d] for d in config.domain_names}


def train_models(config: DmoConfig, store_url: str, specs: list[ModelSpec], base: ModelRecord) -> list[ModelRecord]:
    """Several models from one base in parallel (validation's mixture models), in `specs` order."""
    refs = [ensure_model_task.remote(config, store_url, spec, base) for spec in specs]
    with _TrainingProgress(config, enabled=True) as progress:
        progress.run(dict(zip(refs, specs)), None)
    return ray.get(refs)


class _TrainingProgress:
    """A bar per running model, fed by the metrics file the training loop appends to.

    The workers write `<workdir>/models/<name>-<key>.metrics.jsonl`; on a cluster
    without a shared filesystem the bars simply stay empty.
    """

    def __init__(self, config: DmoConfig, *, enabled: bool):
        self.models_dir = Path(config.project.workdir) / "models"
        self.config = config
        self.bars = Progress(TextColumn("{task.description:>18}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                             TimeElapsedColumn(), disable=not enabled, console=Console(stderr=True))

    def __enter__(self) -> _TrainingProgress:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)

    def run(self, pending: dict[ray.ObjectRef, ModelSpec], on_done) -> list[ModelRecord]:
        tasks = {ref: self.bars.add_task(spec.name, total=stage_settings(self.config, spec.kind).steps) for ref, spec in pending.items()}
        done: list[ModelRecord] = []
        pending = dict(pending)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in ready:
                spec = pending.pop(ref)
                record = ray.get(ref)
                self.bars.update(tasks[ref], completed=self.bars.tasks[tasks[ref]].total)
                done.append(record)
                if on_done:
                    on_done(record)
            for ref, spec in pending.items():
                self.bars.update(tasks[ref], completed=self._latest_step(spec.name))
        return done

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
