"""`dmo validate`: train mixture models and check that proxies rank like them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dmo.cli.common import console, open_store
from dmo.cli.options import JsonFlag, StoreUrlOption, print_json
from dmo.config import load_config


def validate(
    search_id: Annotated[int, typer.Argument(metavar="SEARCH_ID")],
    mixtures: Annotated[int, typer.Option("--mixtures", "-m", min=2, help="Mixtures to train: the best 3 plus Dirichlet draws.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the Dirichlet draws.")] = 0,
    config_path: Annotated[Path | None, typer.Option("--config", "-c", help="Config whose store holds the search.")] = None,
    store_url: StoreUrlOption = None,
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Spearman ρ, Kendall τ and top-1 regret of proxies vs mixture-trained models."""
    from dmo.fidelity.validate import summary_rows, validate_search
    from dmo.search.proxy import ProxyEvaluator
    from dmo.search.searches import proxy_source, search_config
    from workers.cluster import connect
    from workers.training import train_models

    config = load_config(config_path) if config_path else None
    store = open_store(config, store_url)
    search = store.get_search(search_id)
    settings = search_config(search)
    base = store.get_model(int(search.config["base_id"]))
    connect(address or settings.ray.address, num_cpus=settings.ray.num_cpus)
    proxy = ProxyEvaluator(proxy_source(store, search, settings))
    summary = validate_search(
        store, search, settings, mixtures=mixtures, proxy=proxy, seed=seed,
        train_mixtures=lambda specs: train_models(settings, store.url, specs, base),
    )
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"Proxy fidelity of search {search_id} ({mixtures} mixtures, {summary['metric']})")
    for column in ("benchmark", "spearman ρ", "kendall τ", "top-1 regret", "pick in top-3"):
        table.add_column(column, justify="right")
    for name, row in summary_rows(summary):
        table.add_row(name, f"{row['spearman']:.3f}", f"{row['kendall']:.3f}", f"{row['regret']:.2f}", str(row["in_top_3"]))
    console.print(table)
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/] {note}")
