"""`dmo export`: a searched mixture as a recipe for the full SFT run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dmo.cli.common import console, open_store
from dmo.cli.options import DEFAULT_CONFIG, ConfigOption, JsonFlag, StoreUrlOption, print_json

FORMAT_HELP = "llamafactory | json | mergekit | jsonl"


def export(
    search_id: Annotated[int, typer.Argument(metavar="SEARCH_ID")],
    fmt: Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Recipe file to write.")],
    budget: Annotated[int | None, typer.Option(min=1, help="Samples of the full run (default: the expert budget).")] = None,
    trial: Annotated[int | None, typer.Option(min=0, help="Trial number (default: the best).")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    store_url: StoreUrlOption = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write the best mixture of a search as a LLaMA-Factory, JSON, mergekit or JSONL recipe."""
    from dmo.recipes import export_recipe

    with open_store(store_url, config) as store:
        search = store.get_search(search_id)
        n = budget or search.config.training.mixture_stage().sample_budget
        path = Path(export_recipe(store, search_id, fmt=fmt, budget=n, out=out, trial_number=trial, force=force).path)
    if as_json:
        print_json({"search_id": search_id, "format": fmt, "path": str(path), "budget": n})
    else:
        console.print(f"wrote {fmt} recipe to {escape(str(path))}")
