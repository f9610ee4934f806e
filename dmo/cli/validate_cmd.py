"""`dmo validate`: train mixture models and check that proxies rank like them."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from dmo.cli.common import console, open_store
from dmo.cli.options import (
    DEFAULT_CONFIG,
    AddressOption,
    ConfigOption,
    JsonFlag,
    StoreUrlOption,
    print_json,
)
from dmo.cli.progress import model_bars


class Protocol(str, Enum):
    held_out = "held-out"
    reference = "reference"


def validate(
    search_id: Annotated[int, typer.Argument(metavar="SEARCH_ID")],
    mixtures: Annotated[int, typer.Option(
        "--mixtures", "-m", min=2, help="Held-out Dirichlet(1) mixtures to train (disjoint from the search's trials).",
    )] = 20,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the held-out draws (use one the search never saw).")] = 0,
    protocol: Annotated[Protocol, typer.Option(
        help="held-out: --mixtures draws; reference: the reference study's 7 two-domain + 21 three-domain "
        "grid mixtures + 20 draws and the uniform mixture.",
    )] = Protocol.held_out,
    repeats: Annotated[int, typer.Option(
        min=1, max=4, help="Models per held-out mixture, each on its own seed; 2 measures the real ranking's "
        "test–retest ceiling.",
    )] = 1,
    picks: Annotated[int, typer.Option(min=0, help="The search's best trials to train too, reported apart.")] = 3,
    config: ConfigOption = DEFAULT_CONFIG,
    store_url: StoreUrlOption = None,
    address: AddressOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Spearman ρ, Kendall τ and top-1 regret of proxies vs mixture-trained models, on held-out mixtures."""
    from dmo.fidelity.validate import ValidationPlan

    plan = ValidationPlan(protocol=protocol.value, mixtures=mixtures, seed=seed, repeats=repeats, picks=picks)
    store = open_store(store_url, config)
    search = store.get_search(search_id)
    from dmo.fidelity.validate import validate_search
    from dmo.search.proxy import ProxyEvaluator
    from dmo.search.searches import proxy_source
    from workers import api

    settings = search.config
    base = store.get_model(search.snapshot.base_id)
    api.connect(address or settings.ray.address, num_cpus=settings.ray.num_cpus)
    proxy = ProxyEvaluator(proxy_source(store, search))
    with model_bars(enabled=not as_json) as on_step:
        summary = validate_search(
            store, search, plan=plan, proxy=proxy,
            train_mixtures=lambda specs: api.train_mixture_models(settings, store, specs, base, on_step=on_step),
        )
    if as_json:
        print_json(summary)
        return
    print_summary(search_id, summary)


def _interval(pair: Any) -> str:
    return "" if not pair else f"{pair[0]:.2f} … {pair[1]:.2f}"


def print_summary(search_id: int, summary: dict[str, Any]) -> None:
    from rich.table import Table

    from dmo.fidelity.validate import summary_rows

    title = (f"Proxy fidelity of search {search_id}: {summary['held_out']} {summary['protocol']} mixtures "
             f"(seed {summary['seed']}, {summary['repeats']} model(s) each, {summary['metric']})")
    table = Table(title=title)
    retest = summary.get("retest")
    # Each proxy figure beside the real ranking's agreement with itself, the scale to read it on: a
    # proxy judged on the mean of the runs can exceed one-run-vs-one-run ρ (ceiling_of_mean, below).
    columns = ("benchmark", "spearman ρ", "90% interval", "kendall τ", "90% interval", "top-1 regret",
               "pick in top-3", *(("real vs real ρ", "real vs real regret") if retest else ()))
    for column in columns:
        table.add_column(column, justify="right")
    for name, row in summary_rows(summary):
        cells = [name, f"{row['spearman']:.3f}", _interval(row.get("spearman_90")), f"{row['kendall']:.3f}",
                 _interval(row.get("kendall_90")), f"{row['regret']:.2f}", str(row["in_top_3"])]
        if retest:
            own = retest["mean_score"] if name == "mean score" else retest["per_benchmark"][name]
            cells += [f"{own['spearman']:.3f}", f"{own['regret']:.2f}"]
        table.add_row(*cells)
    console.print(table)
    if retest:
        mean = retest["mean_score"]
        console.print(f"real vs real (two seeds): spearman {mean['spearman']:.3f} ({_interval(mean['spearman_90'])}); "
                      f"a perfect proxy would reach about {mean['ceiling_of_mean']:.2f} against the mean of the runs; "
                      f"one run's pick loses {mean['regret']:.2f} on the other (a proxy regret at or below it "
                      "picks as well as training again would)")
    else:
        console.print("[yellow]note:[/] no test–retest ceiling (run with --repeats 2 to measure it)")
    for group, row in summary.get("groups", {}).items():
        console.print(f"  {group}: spearman {row['spearman']:.3f} ({_interval(row['spearman_90'])}), "
                      f"regret {row['regret']:.2f}, n {row['n']}")
    calibration = summary.get("calibration")
    if calibration:
        raw, fitted = calibration["raw"], calibration["calibrated"]
        console.print(f"monotone calibration fitted on {len(calibration['fit_on'])} mixtures, judged on the other "
                      f"{calibration['judged_on']}: spearman {raw['spearman']:.3f} → {fitted['spearman']:.3f}, "
                      f"regret {raw['regret']:.2f} → {fitted['regret']:.2f}")
    transfer = summary.get("calibration_transfer")
    if transfer:
        raw, fitted = transfer["raw"], transfer["calibrated"]
        fitted_on = ", ".join(str(i) for i in transfer["fitted_on_validations"])
        console.print(f"`dmo best --calibrated`'s calibration (fitted on the {transfer['fitted_on']} held-out mixtures of "
                      f"validation{'s' if len(transfer['fitted_on_validations']) > 1 else ''} {fitted_on}), judged on these {transfer['judged_on']}: spearman "
                      f"{raw['spearman']:.3f} ({_interval(raw['spearman_90'])}) → {fitted['spearman']:.3f} "
                      f"({_interval(fitted['spearman_90'])}), regret {raw['regret']:.2f} → {fitted['regret']:.2f}"
                      + (f" (band pick {fitted['band_regret']:.2f}, band {fitted['band']:.2f})" if "band_regret" in fitted
                         else ""))
        law = transfer.get("mixture_law")
        if law:
            console.print(f"  no proxy, a quadratic mixture law of the real scores fitted on the same mixtures (what `dmo best "
                          f"--calibrated` ranks by): spearman "
                          f"{law['spearman']:.3f} ({_interval(law['spearman_90'])}), regret {law['regret']:.2f}")
        elif "mixture_law" in transfer:
            console.print("  no proxy, a quadratic mixture law: too few earlier mixtures to fit one (one per coefficient)")
        blend = transfer.get("blend")
        if blend:
            console.print(f"  the blend of the two (not ranked by): spearman {blend['spearman']:.3f} "
                          f"({_interval(blend['spearman_90'])}), regret {blend['regret']:.2f}")
    for pick in summary.get("search_picks", []):
        console.print(f"search pick (trial {pick['trial']}): proxy {pick['proxy']:.3f}, real {pick['real']:.3f} "
                      f"(best held-out real {pick['best_held_out_real']:.3f})")
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/] {note}")
