"""`dmo search run|resume|status|submit`: mixture searches from the command line.

Ray is reached through :mod:`workers.api` only, and only by the commands that
run work (run, resume).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dmo.cli.common import console, experts_table, load_project, open_store, trials_table
from dmo.cli.options import (
    DEFAULT_CONFIG,
    AddressOption,
    ConfigOption,
    JsonFlag,
    StoreUrlOption,
    print_json,
)
from dmo.cli.progress import model_bars, search_bar
from dmo.config.names import SAMPLERS

app = typer.Typer(no_args_is_help=True)

SAMPLER_HELP = f"{' | '.join(SAMPLERS)} (default: the config's search.sampler)"


@app.command("run")
def run(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="Project YAML.")] = DEFAULT_CONFIG,
    trials: Annotated[int | None, typer.Option(min=1, help="Number of finished trials to reach.")] = None,
    sampler: Annotated[str | None, typer.Option(help=SAMPLER_HELP)] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Sampler seed.")] = None,
    store_url: StoreUrlOption = None,
    address: AddressOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Train (or reuse) the experts, then search mixtures and print the best."""
    from dmo.config import with_overrides

    config = with_overrides(load_project(config_path), {
        "search.trials": ("--trials", trials), "search.sampler": ("--sampler", sampler), "search.seed": ("--seed", seed),
    })
    store = open_store(store_url, config, create=True)
    from workers import api  # Ray, torch, Optuna: only once the config and the store are known good

    api.connect(address or config.ray.address, num_cpus=config.ray.num_cpus)
    on_model = None if as_json else model_announcer(datetime.now(UTC))
    with model_bars(enabled=not as_json) as on_step:
        search = api.start_search(config, store, on_model=on_model, on_step=on_step)
    if not as_json:
        console.print(f"search [bold]{search.id}[/] ({search.sampler}, {search.trials_target} trials, "
                      f"{config.search.evaluators} proxy evaluators)")
    finish(store, search, as_json=as_json)


@app.command("resume")
def resume(
    search_id: Annotated[int, typer.Argument(metavar="ID")],
    config: ConfigOption = DEFAULT_CONFIG,
    store_url: StoreUrlOption = None,
    address: AddressOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Continue a search that was killed: finished trials are kept, none is duplicated."""
    from dmo.errors import SearchError

    store = open_store(store_url, config)
    search = store.get_search(search_id)
    if search.status == "finished":
        raise SearchError(f"search {search_id} is already finished", hint=f"`dmo best --search {search_id}` shows its results")
    from workers import api

    api.connect(address or search.config.ray.address, num_cpus=search.config.ray.num_cpus)
    finish(store, search, as_json=as_json)


@app.command("status")
def status(
    search_id: Annotated[int, typer.Argument(metavar="ID")],
    config: ConfigOption = DEFAULT_CONFIG,
    store_url: StoreUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """State of a search: status, trial counts, best mixture so far."""
    with open_store(store_url, config) as store:
        report(store, search_id, as_json=as_json, top=1)


@app.command("submit")
def submit(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG")],
    address: Annotated[str, typer.Option("--address", help="Ray dashboard address, e.g. http://HEAD:8265.")],
    store_url: Annotated[str, typer.Option("--store-url", help="A store every node reaches (PostgreSQL).")],
    trials: Annotated[int | None, typer.Option(min=1, help="Number of finished trials to reach.")] = None,
    sampler: Annotated[str | None, typer.Option(help=SAMPLER_HELP)] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Block until the job ends; exit 4 if it failed.")] = False,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="GCS address the job's driver joins (default: the one Ray sets for jobs).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Send `dmo search run` to a Ray cluster through the Ray Jobs API."""
    from dmo.cli.submit import UNFINISHED, submit_search

    payload = submit_search(config_path, address=address, store_url=store_url, trials=trials, sampler=sampler,
                            wait=wait, ray_address=ray_address)
    if as_json:
        print_json(payload)
    else:
        console.print(f"submitted job [bold]{payload['job_id']}[/] to {payload['address']}: {payload['status']}")
        if "logs_tail" in payload:
            console.print(payload["logs_tail"], markup=False, highlight=False)
    if payload["status"] in UNFINISHED:
        from dmo.errors import WorkFailed

        raise WorkFailed(f"job {payload['job_id']} {payload['status'].lower()} before its search finished",
                         where=address, hint="its log is printed above")


def finish(store, search, *, as_json: bool) -> None:
    """Run (or resume) a search on Ray, print where it ended, and fail if all its trials did."""
    from dmo.errors import WorkFailed
    from workers import api

    with search_bar(search.id, enabled=not as_json) as on_progress:
        outcome = api.run_search(store, search, on_progress=on_progress)
    if outcome.note and not as_json:
        console.print(f"[yellow]note:[/] {outcome.note}")
    report(store, outcome.search_id, as_json=as_json, top=5)
    if outcome.status == "failed":
        raise WorkFailed(f"search {outcome.search_id} failed: {outcome.completed} of {search.trials_target} trials "
                         f"complete, {outcome.failed} failed", hint=f"`dmo search status {outcome.search_id}` shows them")


def report(store, search_id: int, *, as_json: bool, top: int) -> None:
    from dmo.search.objectives import pareto_front

    search = store.get_search(search_id)
    counts = store.trial_counts(search_id)
    best = store.best_trials(search_id, top_k=top)
    models = [store.get_model(i) for i in search.expert_ids]
    front = None
    if search.objective_kind == "multi":
        finished = store.trials(search_id)
        front = [finished[i] for i in pareto_front([t.objective for t in finished])]
    if as_json:
        print_json({
            "search": {"id": search.id, "status": search.status, "error": search.error, "sampler": search.sampler,
                       "study": search.study_name, "metric": search.metric, "domains": list(search.domains),
                       "benchmarks": search.benchmark_metrics,
                       "trials_target": search.trials_target, "trials": counts},
            "best": [{"number": t.number, "weights": t.weights, "objective": list(t.objective), "scores": t.scores,
                      "full_value": t.full_value, "full_scores": t.full_scores} for t in best],
            "pareto_front": None if front is None else [
                {"number": t.number, "weights": t.weights, "objective": list(t.objective)} for t in front
            ],
            "experts": [{"id": m.id, "domain": m.domain, "efficiency": m.efficiency, "checkpoint": m.checkpoint_uri} for m in models],
        })
        return
    console.print(f"search {search.id}: [bold]{search.status}[/], trials {json.dumps(counts)}")
    if search.error:
        console.print(f"[yellow]{search.error}[/]", markup=True, highlight=False)
    shown = "the best mixture" if len(best) == 1 else f"the {len(best)} best mixtures"
    scored = "declared benchmarks" if search.metric == "benchmark" else f"dev, {search.metric}"
    console.print(trials_table(best, search.domains, search.benchmark_metrics, declared=search.metric == "benchmark",
                               title=f"{shown} ({scored})"))
    if front is not None:
        console.print(trials_table(front, search.domains, search.benchmark_metrics, declared=search.metric == "benchmark",
                                   title="Pareto front (mean, worst benchmark)"))
    console.print(experts_table(models, title="Experts and their efficiency settings"))


def model_announcer(started: datetime):
    """``on_model``: say when each model is ready, and whether it was trained now or reused."""

    def announce(model) -> None:
        what = f"{model.kind} {model.domain or ''}".strip()
        pretrained = (model.training or {}).get("pretrained")
        if pretrained:  # a Hugging Face checkpoint is the base as it is
            console.print(f"[green]✓[/] base: the pretrained checkpoint {escape(str(pretrained))} (nothing to train)")
            return
        shipped = (model.training or {}).get("shipped")
        if shipped:  # trained once by `dmo train base --from-scratch --out`, weights pinned by the config
            console.print(f"[green]✓[/] base: the shipped checkpoint {escape(_shown_path(shipped))} "
                          "(weights checked against the config's pin; nothing to train)")
            return
        if model.finished_at is not None and model.finished_at < started:
            console.print(f"[green]✓[/] {what} ready (cached, trained {model.finished_at:%Y-%m-%d %H:%M} UTC)")
            return
        seconds = (model.metrics or {}).get("train_seconds")
        console.print(f"[green]✓[/] {what} ready" + (f" (trained in {seconds:.0f} s)" if seconds else ""))

    return announce


def _shown_path(path: str) -> str:
    """A path under the working directory as a relative one (shorter in a terminal)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path
