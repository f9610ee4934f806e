"""What several commands share: the one way to the store, and the tables they print.

Every command that touches the store finds it the same way:
``--store-url`` > ``$DMO_STORE_URL`` > the ``project.store_url`` of ``-c CONFIG``
(default ``configs/demo.yaml``, whose store is SQLite under its workdir).
Commands that only read open the store with :meth:`Store.open_existing`, which
creates, migrates and locks nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dmo.cli.options import DEFAULT_CONFIG

if TYPE_CHECKING:
    from dmo.config import DmoConfig
    from storage import ModelRecord, Store, TrialRecord

STORE_URL_ENV = "DMO_STORE_URL"

# Piped output (logs, CI, README excerpts) would otherwise wrap tables at 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)
err_console = Console(stderr=True)


def load_project(path: Path) -> DmoConfig:
    from dmo.config import load_config

    return load_config(path)


def resolve_store_url(store_url: str | None, config: DmoConfig | Path | None = None) -> str:
    """The store a command uses: ``--store-url``, else ``$DMO_STORE_URL``, else the config's."""
    if store_url:
        return store_url
    if os.environ.get(STORE_URL_ENV):
        return os.environ[STORE_URL_ENV]
    if config is None or isinstance(config, Path):
        path = config or DEFAULT_CONFIG
        if not path.is_file() and path == DEFAULT_CONFIG:
            from dmo.errors import StoreError

            raise StoreError(
                f"no store given and no {DEFAULT_CONFIG} here",
                where="store",
                hint=f"pass --store-url URL, set {STORE_URL_ENV}, or give the project's -c CONFIG",
            )
        config = load_project(path)
    return config.project.resolved_store_url()


def open_store(
    store_url: str | None, config: DmoConfig | Path | None = None, *, create: bool = False, retry_s: float | None = None
) -> Store:
    """The store of a command; ``create`` for commands that start a project's store (demo, train,
    search run, db upgrade), otherwise it must exist already at this dmo's schema."""
    from storage import Store
    from storage.db import DEFAULT_RETRY_S

    url = resolve_store_url(store_url, config)
    retry = DEFAULT_RETRY_S if retry_s is None else retry_s
    return Store.open(url, retry_s=retry) if create else Store.open_existing(url, retry_s=retry)


def trials_table(trials: list[TrialRecord], domains: tuple[str, ...], benchmarks: dict[str, str], *,
                 title: str, declared: bool = False) -> Table:
    """Weights per domain, the objective, then each benchmark's score (headed by its metric when declared)."""
    table = Table(title=escape(title))
    table.add_column("#", justify="right")
    table.add_column("trial", justify="right")
    for domain in domains:
        table.add_column(f"w {domain}", justify="right")
    # A search scored on an anchor subset: its objective and scores are the subset's; the trials rescored
    # on every sample (ranked first) add their full value.
    rescored = any(trial.full_value is not None for trial in trials)
    table.add_column("objective\n(anchors)" if rescored else "objective", justify="right", style="bold")
    if rescored:
        table.add_column("full\nsplits", justify="right", style="bold")
    for name, metric in benchmarks.items():
        table.add_column(f"{name}\n{metric}" if declared else name, justify="right")
    for rank, trial in enumerate(trials, start=1):
        table.add_row(
            str(rank),
            str(trial.number),
            *(f"{trial.weights.get(d, 0.0):.3f}" for d in domains),
            _fmt(trial.objective[0] if trial.objective else None),
            *((_fmt(trial.full_value),) if rescored else ()),
            *(_fmt(trial.scores.get(b)) for b in benchmarks),
        )
    return table


def experts_table(models: list[ModelRecord], *, title: str) -> Table:
    table = Table(title=escape(title))
    for column in ("id", "kind", "domain", "MoD schedule", "retention per layer", "FLOPs", "KV", "dev EM", "train s"):
        table.add_column(column, no_wrap=column == "retention per layer")
    for model in models:
        efficiency = model.efficiency or {}
        dev_scores = (model.metrics or {}).get("dev", {})
        # An expert is judged on its own domain; base and mixture models on the average.
        own = dev_scores.get("benchmarks", {}).get(model.domain or "", {}).get("exact_match")
        dev = own if own is not None else dev_scores.get("average", {}).get("exact_match")
        table.add_row(
            str(model.id),
            model.kind,
            model.domain or "-",
            str(model.mod_schedule or "-").replace("prd_shifted_cosine", "PRD cosine"),
            ",".join(f"{r:.2f}".removeprefix("0") for r in efficiency.get("retention", [])),
            _fmt(model.flops_ratio, "{:.1%}"),
            _fmt(model.kv_ratio, "{:.1%}"),
            _fmt(dev),
            _fmt((model.metrics or {}).get("train_seconds"), "{:.0f}"),
        )
    return table


def _fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "-" if value is None else pattern.format(value)
