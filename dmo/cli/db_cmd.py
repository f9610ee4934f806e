"""`dmo db upgrade`, `dmo searches` and `dmo best`: the store from the command line.

`app` carries all three (mounted as `dmo db ...`); the lead also mounts
:func:`searches` and :func:`best` as top-level commands. The store URL comes
from ``--url``, else the project of ``--config``, else ``$DMO_STORE_URL``, else
``sqlite:///.dmo/dmo.sqlite``. ``--json`` prints JSON to stdout and nothing else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from dmo.cli.common import console, trials_table
from dmo.cli.options import StoreUrlOption
from rich.table import Table

from dmo.errors import SearchError, StoreError
from storage import DEFAULT_URL, Store, head_revision, mask_url, to_json
from storage.db import parse_url, sqlite_path

app = typer.Typer(
    help="The SQL store: schema migrations and queries.", no_args_is_help=True, add_completion=False
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Project YAML whose store (project.store_url) to use."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON to stdout instead of tables.")]
RetryOption = Annotated[
    float,
    typer.Option("--retry-s", min=0.0, help="Seconds to retry an unreachable or locked store."),
]


def resolve_store_url(url: str | None = None, config: Path | None = None) -> str:
    """``--url``, else the config's store, else ``$DMO_STORE_URL``, else the default SQLite file."""
    if url:
        return url
    if config is not None:
        from dmo.config import load_config

        return load_config(config).project.resolved_store_url()
    return os.environ.get("DMO_STORE_URL") or DEFAULT_URL


def _open_for_reading(url: str, retry_s: float) -> Store:
    """Open without migrating, and without creating a SQLite file: queries change nothing."""
    path = sqlite_path(parse_url(url)) if url.startswith("sqlite") else None
    if path is not None and not path.exists():
        raise StoreError("no store here yet", where=mask_url(url), hint="run `dmo db upgrade` first")
    store = Store.open(url, upgrade=False, retry_s=retry_s)
    if store.revision() is None:
        store.dispose()
        raise StoreError("the database has no dmo tables", where=store.url_masked,
                         hint="run `dmo db upgrade` first")
    return store


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@app.command("upgrade")
def upgrade(
    url: StoreUrlOption = None, config: ConfigOption = None, retry_s: RetryOption = 10.0
) -> None:
    """Create or migrate dmo's tables (idempotent; Optuna's tables are left alone)."""
    store = Store.open(resolve_store_url(url, config), upgrade=True, retry_s=retry_s)
    try:
        revision = store.revision()
        typer.echo(f"{store.url_masked}: schema at revision {revision} (head {head_revision()})")
    finally:
        store.dispose()


@app.command("searches")
def searches(
    url: StoreUrlOption = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
    retry_s: RetryOption = 10.0,
) -> None:
    """List the searches in the store with their trial counts and best objective."""
    store = _open_for_reading(resolve_store_url(url, config), retry_s)
    try:
        rows = []
        for search in store.list_searches():
            best = store.best_trials(search.id, top_k=1)
            rows.append({
                **to_json(search),
                "direction": search.direction,
                "trial_counts": store.trial_counts(search.id),
                "best_value": best[0].value if best else None,
                "best_trial": best[0].number if best else None,
            })
    finally:
        store.dispose()
    if json_output:
        _print_json(rows)
        return
    table = Table(title=f"searches in {store.url_masked}")
    columns = ("id", "name", "study", "sampler", "status", "domains", "complete/all", "best")
    for column in (*columns, "created"):
        table.add_column(column)
    for row in rows:
        counts = row["trial_counts"]
        table.add_row(
            str(row["id"]), row["name"], row["study_name"], row["sampler"], row["status"],
            ", ".join(row["domains"]), f"{counts.get('complete', 0)}/{sum(counts.values())}",
            _fmt(row["best_value"]), row["created_at"][:19],
        )
    console.print(table)


@app.command("best")
def best(
    search: Annotated[
        int | None, typer.Option("--search", "-s", help="Search id; default the newest.")
    ] = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="How many mixtures to show.")] = 5,
    url: StoreUrlOption = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
    retry_s: RetryOption = 10.0,
) -> None:
    """The best mixtures of a search: weights, objective, benchmark scores and proxy fidelity."""
    store = _open_for_reading(resolve_store_url(url, config), retry_s)
    try:
        if search is None:
            all_searches = store.list_searches()
            if not all_searches:
                raise SearchError("the store has no searches", where=store.url_masked,
                                  hint="start one with `dmo search`")
            search = all_searches[-1].id
        record = store.get_search(search)
        trials = store.best_trials(record.id, top_k=top)
        validation = store.latest_validation(record.id, finished_only=True)
    finally:
        store.dispose()
    fidelity = None
    if validation is not None:
        fidelity = {"validation_id": validation.id, **validation.summary}
    if json_output:
        _print_json({
            "search": {
                "id": record.id, "name": record.name, "study_name": record.study_name,
                "status": record.status, "direction": record.direction,
                "domains": list(record.domains),
            },
            "trials": [
                {"rank": rank, "number": t.number, "weights": t.weights, "value": t.value,
                 "objective": list(t.objective), "scores": t.scores, "merge_method": t.merge_method,
                 "efficiency": t.efficiency, "duration_s": t.duration_s}
                for rank, t in enumerate(trials, start=1)
            ],
            "fidelity": fidelity,
        })
        return
    console.print(trials_table(trials, record.domains,
                               title=f"best mixtures of search {record.id} ({record.name}, {record.direction})"))
    if fidelity is None:
        console.print("fidelity: no finished validation (run `dmo validate`)")
    else:
        # The ranking the search optimises: mixtures ordered by their mean score.
        mean = fidelity.get("mean_score", {})
        keys = [k for k in ("spearman", "kendall", "regret") if k in mean]
        shown = ", ".join(f"{k} {_fmt(mean[k])}" for k in keys)
        console.print(f"fidelity (validation {fidelity['validation_id']}): {shown or 'no summary'}")
