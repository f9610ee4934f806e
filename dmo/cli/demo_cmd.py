"""`dmo demo`: the main job end to end on the embedded default config."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from dmo.cli.common import console, open_store
from dmo.cli.data_cmd import print_summary
from dmo.cli.options import DEFAULT_CONFIG, ConfigOption
from dmo.cli.search_cmd import _announce_model, report
from dmo.config import load_config
from dmo.data import SPLITS, load_domains


def demo(
    config: ConfigOption = DEFAULT_CONFIG,
    trials: Annotated[int | None, typer.Option(min=1, help="Override the number of search trials.")] = None,
) -> None:
    """Generate the domains, train base and experts, search mixtures, print the best, export a recipe."""
    from dmo.recipes import export_recipe
    from workers.cluster import connect
    from workers.search import run_on_ray, start_search

    started = time.perf_counter()
    settings = load_config(config)
    domains = load_domains(settings)
    rows = [
        {"domain": name, **{split: len(data.split(split)) for split in SPLITS}, "sha256": data.content_hash()}
        for name, data in domains.items()
    ]
    print_summary(rows, title=f"{settings.project.name}: synthetic domains")
    store = open_store(settings, None)
    console.print(f"store: {store.url_masked}")
    connect(settings.ray.address, num_cpus=settings.ray.num_cpus)
    console.print("training the base model, then one MoD expert per domain on Ray (cached after the first run)…")
    search = start_search(settings, store, trials=trials, on_model=_announce_model)
    console.print(f"search [bold]{search.id}[/]: {search.sampler}, {search.config['trials']} trials, "
                  f"{settings.search.evaluators} proxy evaluators")
    run_on_ray(store, search)
    report(store, search.id, as_json=False, top=5)
    out = settings.project.workdir / "recipes" / f"search-{search.id}"
    for fmt, name in (("llamafactory", "llamafactory.yaml"), ("json", "mixture.json")):
        path = export_recipe(store, search.id, fmt=fmt, budget=settings.training.expert.sample_budget, out=out / name, config=settings, force=True)
        console.print(f"recipe ({fmt}): {path}")
    console.print(f"done in {time.perf_counter() - started:.0f} s")
