"""`dmo demo`: the main job end to end on the embedded default config."""

from __future__ import annotations

import time
from pathlib import Path
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape

from dmo.cli.common import console, load_project, open_store
from dmo.cli.data_cmd import domain_rows, print_summary
from dmo.cli.options import DEFAULT_CONFIG, ConfigOption
from dmo.cli.progress import model_bars
from dmo.cli.search_cmd import finish, model_announcer


def demo(
    config: ConfigOption = DEFAULT_CONFIG,
    trials: Annotated[int | None, typer.Option(min=1, help="Override the number of search trials.")] = None,
) -> None:
    """Generate the domains, train base and experts, search mixtures, print the best, export a recipe."""
    from dmo.config import with_overrides
    from dmo.data import load_domains
    started = time.perf_counter()
    settings = with_overrides(load_project(config), {"search.trials": ("--trials", trials)})
    from dmo.recipes.export import ExportOptions, export_recipe
    from workers import api

    print_summary(domain_rows(load_domains(settings)), title=f"{settings.project.name}: domains")
    store = open_store(None, settings, create=True)
    console.print(f"store: {escape(store.url_masked)}")
    api.connect(settings.ray.address, num_cpus=settings.ray.num_cpus)
    first = "adopting the shipped base" if settings.training.pretrained_base else "training the base model"
    console.print(f"{first}, then one MoD expert per domain on Ray (cached after the first run)…")
    with model_bars() as on_step:
        search = api.start_search(settings, store, on_model=model_announcer(datetime.now(UTC)), on_step=on_step)
    console.print(f"search [bold]{search.id}[/]: {search.sampler}, {search.trials_target} trials, "
                  f"{settings.search.evaluators} proxy evaluators")
    finish(store, search, as_json=False)
    out = settings.project.workdir / "recipes" / f"search-{search.id}"
    options = ExportOptions(budget=settings.training.mixture_stage().sample_budget)
    for fmt, name in (("llamafactory", "llamafactory"), ("json", "mixture.json")):
        path = Path(export_recipe(store, search.id, fmt=fmt, out=out / name, options=options, force=True).record.path)
        console.print(f"recipe ({fmt}): {escape(str(path))}")
    console.print(f"done in {time.perf_counter() - started:.0f} s")
