"""What several commands share: opening the store of a config, printing results."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dmo.config import DmoConfig, load_config
from storage import ModelRecord, Store, TrialRecord

# Piped output (logs, CI, README excerpts) would otherwise wrap tables at 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)


def store_url_for(config: DmoConfig | None, override: str | None) -> str:
    """--store-url, else $DMO_STORE_URL, else the config's (SQLite under the workdir)."""
    if override:
        return override
    if os.environ.get("DMO_STORE_URL"):
        return os.environ["DMO_STORE_URL"]
    if config is not None:
        return config.project.resolved_store_url()
    return load_config(Path("configs/demo.yaml")).project.resolved_store_url()


def open_store(config: DmoConfig | None, override: str | None) -> Store:
    if config is not None and not (override or os.environ.get("DMO_STORE_URL")):
        config.project.workdir.mkdir(parents=True, exist_ok=True)
    return Store.open(store_url_for(config, override))


def trials_table(trials: list[TrialRecord], domains: tuple[str, ...], *, title: str) -> Table:
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("trial", justify="right")
    for domain in domains:
        table.add_column(f"w {domain}", justify="right")
    table.add_column("objective", justify="right", style="bold")
    for domain in domains:
        table.add_column(domain, justify="right")
    for rank, trial in enumerate(trials, start=1):
        table.add_row(
            str(rank),
            str(trial.number),
            *(f"{trial.weights.get(d, 0.0):.3f}" for d in domains),
            _fmt(trial.objective[0] if trial.objective else None),
            *(_fmt(trial.scores.get(d)) for d in domains),
        )
    return table


def experts_table(models: list[ModelRecord], *, title: str) -> Table:
    table = Table(title=title)
    for column in ("id", "kind", "domain", "MoD schedule", "retention per layer", "FLOPs", "KV", "dev EM", "train s"):
        table.add_column(column, no_wrap=column == "retention per layer")
    for model in models:
        efficiency = model.efficiency or {}
        retention = efficiency.get("retention") or efficiency.get("layer_retention") or []
        dev_scores = (model.metrics or {}).get("dev", {})
        # An expert is judged on its own domain; base and mixture models on the average.
        own = dev_scores.get("benchmarks", {}).get(model.domain or "", {}).get("exact_match")
        dev = own if own is not None else dev_scores.get("average", {}).get("exact_match")
        table.add_row(
            str(model.id),
            model.kind,
            model.domain or "-",
            str(model.mod_schedule or efficiency.get("schedule", "-")).replace("prd_shifted_cosine", "PRD cosine"),
            ",".join(f"{r:.2f}".removeprefix("0") for r in retention),
            _fmt(model.flops_ratio, "{:.1%}"),
            _fmt(model.kv_ratio, "{:.1%}"),
            _fmt(dev),
            _fmt((model.metrics or {}).get("train_seconds"), "{:.0f}"),
        )
    return table


def _fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "-" if value is None else pattern.format(value)
