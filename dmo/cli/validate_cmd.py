"""`dmo validate`: train mixture models and check that proxies rank like them."""

from __future__ import annotations

from typing import Annotated

import typer

from dmo.cli.common import console, open_store
from dmo.cli.options import DEFAULT_CONFIG, AddressOption, ConfigOption, JsonFlag, StoreUrlOption, print_json
from dmo.cli.progress import model_bars


def validate(
    search_id: Annotated[int, typer.Argument(metavar="SEARCH_ID")],
    mixtures: Annotated[int, typer.Option("--mixtures", "-m", min=2, help="Mixtures to train: the best 3 plus Dirichlet draws.")] = 10,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the Dirichlet draws.")] = 0,
    config: ConfigOption = DEFAULT_CONFIG,
    store_url: StoreUrlOption = None,
    address: AddressOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Spearman ρ, Kendall τ and top-1 regret of proxies vs mixture-trained models."""
    from rich.table import Table

    store = open_store(store_url, config)
    search = store.get_search(search_id)
    from dmo.fidelity.validate import summary_rows, validate_search
    from dmo.search.proxy import ProxyEvaluator
    from dmo.search.searches import proxy_source
    from workers import api

    settings = search.config
    base = store.get_model(search.snapshot.base_id)
    api.connect(address or settings.ray.address, num_cpus=settings.ray.num_cpus)
    proxy = ProxyEvaluator(proxy_source(store, search))
    with model_bars(enabled=not as_json) as on_step:
        summary = validate_search(
            store, search, mixtures=mixtures, proxy=proxy, seed=seed,
            train_mixtures=lambda specs: api.train_mixture_models(settings, store, specs, base, on_step=on_step),
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
