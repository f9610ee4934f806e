"""`dmo export`: a searched mixture as a recipe for the full SFT run."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dmo.cli.common import console, open_store
from dmo.cli.options import DEFAULT_CONFIG, ConfigOption, JsonFlag, StoreUrlOption, print_json


class Format(str, Enum):
    llamafactory = "llamafactory"
    json = "json"
    mergekit = "mergekit"
    jsonl = "jsonl"


class Strategy(str, Enum):
    exact = "exact"
    interleave = "interleave"


def export(
    search_id: Annotated[int, typer.Argument(metavar="SEARCH_ID")],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="llamafactory and jsonl write a directory; json and mergekit a file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Recipe directory (llamafactory, jsonl) or file (json, mergekit).")],
    budget: Annotated[int | None, typer.Option(min=1, help="Samples the full run sees (default: the search's mixture-model budget).")] = None,
    gpus: Annotated[int, typer.Option(min=1, help="GPUs of the full run.")] = 1,
    per_device_batch: Annotated[int | None, typer.Option(min=1, help="Batch per GPU (default: the search's mixture-model batch size).")] = None,
    grad_accum: Annotated[int, typer.Option(min=1, help="Gradient accumulation steps.")] = 1,
    strategy: Annotated[Strategy, typer.Option(help="exact: each domain's share as pre-sampled files (concat); interleave: LLaMA-Factory's interleave_under + interleave_probs.")] = Strategy.exact,
    relative: Annotated[bool, typer.Option("--relative", help="A directory meant to be moved: relative dataset_dir, images copied in.")] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seed of which samples are picked.")] = 0,
    trial: Annotated[int | None, typer.Option(min=0, help="Trial number (default: the best).")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    store_url: StoreUrlOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing recipe (a user's other files are kept).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write the best mixture of a search as a LLaMA-Factory, JSON, mergekit or JSONL recipe."""
    from dmo.recipes.export import ExportOptions, export_recipe

    with open_store(store_url, config) as store:
        search = store.get_search(search_id)
        n = budget or search.config.training.mixture_stage().sample_budget
        options = ExportOptions(budget=n, gpus=gpus, per_device_batch=per_device_batch, grad_accum=grad_accum,
                                strategy=strategy.value, relative=relative, seed=seed)
        result = export_recipe(store, search_id, fmt=fmt.value, out=out, options=options, trial_number=trial,
                               force=force)
    path = Path(result.record.path)
    if as_json:
        print_json({
            "search_id": search_id, "format": fmt.value, "path": str(path), "sha256": result.record.sha256,
            "budget": n, "counts": {s.domain: s.count for s in result.shares},
            "repeated": [s.domain for s in result.shares if s.repeated],
            "max_steps": result.run.max_steps if result.run else None, "notes": list(result.notes),
        })
        return
    what = "directory" if path.is_dir() else "file"
    console.print(f"wrote the {fmt.value} recipe {what} {escape(str(path))}")
    if path.is_dir():
        console.print("  " + ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())))
    if result.shares:
        console.print("  " + ", ".join(s.describe() for s in result.shares))
    if result.run is not None and fmt.value == "llamafactory":
        console.print(f"  {result.run.describe()}")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
