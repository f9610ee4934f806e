"""`dmo search ...`: run, resume, inspect and submit mixture searches."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from dmo.cli.common import console, experts_table, open_store, store_url_for, trials_table
from dmo.cli.options import DEFAULT_CONFIG, JsonFlag, StoreUrlOption, print_json
from dmo.config import load_config
from dmo.errors import SearchError

app = typer.Typer(no_args_is_help=True)

Address = Annotated[str | None, typer.Option("--address", help="Ray cluster address; default a local Ray.")]


@app.command("run")
def run(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG")] = DEFAULT_CONFIG,
    trials: Annotated[int | None, typer.Option(min=1, help="Number of finished trials to reach.")] = None,
    sampler: Annotated[str | None, typer.Option(help="tpe | gp | cmaes | qmc | random | grid")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampler seed.")] = None,
    store_url: StoreUrlOption = None,
    address: Address = None,
    as_json: JsonFlag = False,
) -> None:
    """Train (or reuse) the experts, then search mixtures and print the best."""
    from workers.cluster import connect
    from workers.search import run_on_ray, start_search

    config = load_config(config_path)
    store = open_store(config, store_url)
    connect(address or config.ray.address, num_cpus=config.ray.num_cpus)
    search = start_search(config, store, trials=trials, sampler=sampler, seed=seed,
                          on_model=None if as_json else _announce_model, show_progress=not as_json)
    if not as_json:
        console.print(f"search [bold]{search.id}[/] ({search.sampler}, {search.config['trials']} trials)")
    outcome = run_on_ray(store, search, show_progress=not as_json)
    report(store, outcome.search_id, as_json=as_json, top=5)


@app.command("resume")
def resume(
    search_id: Annotated[int, typer.Argument(metavar="ID")],
    config_path: Annotated[Path | None, typer.Option("--config", "-c", help="Config whose store holds the search.")] = None,
    store_url: StoreUrlOption = None,
    address: Address = None,
    as_json: JsonFlag = False,
) -> None:
    """Continue a search that was killed: finished trials are kept, none is duplicated."""
    from workers.cluster import connect
    from workers.search import run_on_ray

    config = load_config(config_path) if config_path else None
    store = open_store(config, store_url)
    search = store.get_search(search_id)
    if search.status == "finished":
        raise SearchError(f"search {search_id} is already finished", hint="`dmo best --search ID` shows its results")
    connect(address or (config.ray.address if config else None))
    outcome = run_on_ray(store, search, show_progress=not as_json)
    report(store, outcome.search_id, as_json=as_json, top=5)


@app.command("status")
def status(
    search_id: Annotated[int, typer.Argument(metavar="ID")],
    config_path: Annotated[Path | None, typer.Option("--config", "-c")] = None,
    store_url: StoreUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """State of a search: status, trial counts, best mixture so far."""
    config = load_config(config_path) if config_path else None
    store = open_store(config, store_url)
    report(store, search_id, as_json=as_json, top=1)


@app.command("submit")
def submit(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG")],
    address: Annotated[str, typer.Option("--address", help="Ray dashboard address, e.g. http://HEAD:8265.")],
    store_url: Annotated[str, typer.Option("--store-url", help="A store every node reaches (PostgreSQL).")],
    trials: Annotated[int | None, typer.Option(min=1)] = None,
    sampler: Annotated[str | None, typer.Option()] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Block until the job ends.")] = False,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="GCS address the job's driver joins (default: the one Ray sets for jobs).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Send `dmo search run` to a Ray cluster through the Ray Jobs API."""
    from ray.job_submission import JobSubmissionClient

    load_config(config_path)  # refuse a bad config here, not on the cluster
    if store_url.startswith("sqlite"):
        raise SearchError("a cluster needs a store every node reaches", where="--store-url", hint="use postgresql+psycopg://…")
    staging = Path(tempfile.mkdtemp(prefix="dmo-job-"))
    shutil.copy(config_path, staging / "config.yaml")
    extra = (f" --trials {trials}" if trials else "") + (f" --sampler {sampler}" if sampler else "")
    extra += f" --address {ray_address}" if ray_address else ""
    client = JobSubmissionClient(address)
    job_id = client.submit_job(
        entrypoint=f"dmo search run config.yaml --store-url '{store_url}' --json{extra}",
        runtime_env={"working_dir": str(staging), "env_vars": {"RAY_AUTH_MODE": "disabled"}},
    )
    status_value = str(client.get_job_status(job_id).value)
    if wait:
        while status_value not in ("SUCCEEDED", "FAILED", "STOPPED"):
            time.sleep(2)
            status_value = str(client.get_job_status(job_id).value)
    payload = {"job_id": job_id, "status": status_value, "address": address}
    if status_value == "FAILED":
        payload["logs_tail"] = client.get_job_logs(job_id)[-4000:]
    if as_json:
        print_json(payload)
    else:
        console.print(f"submitted job [bold]{job_id}[/] to {address}: {status_value}")
        if "logs_tail" in payload:
            console.print(payload["logs_tail"], markup=False, highlight=False)
    if status_value == "FAILED":
        raise typer.Exit(1)


def report(store, search_id: int, *, as_json: bool, top: int) -> None:
    search = store.get_search(search_id)
    counts = store.trial_counts(search_id)
    best = store.best_trials(search_id, top_k=top)
    models = [store.get_model(i) for i in search.expert_ids]
    if as_json:
        print_json({
            "search": {"id": search.id, "status": search.status, "sampler": search.sampler, "study": search.study_name,
                       "domains": list(search.domains), "trials": counts},
            "best": [{"number": t.number, "weights": t.weights, "objective": list(t.objective), "scores": t.scores} for t in best],
            "pareto_front": _pareto(store, search_id) if search.objective.get("kind") == "multi" else None,
            "experts": [{"domain": m.domain, "efficiency": m.efficiency, "checkpoint": m.checkpoint_uri} for m in models],
        })
        return
    console.print(f"search {search.id}: [bold]{search.status}[/], trials {json.dumps(counts)}")
    console.print(trials_table(best, search.domains, title=f"Top {len(best)} mixtures (dev, {search.objective.get('metric', 'score')})"))
    if search.objective.get("kind") == "multi":
        front = {row["number"] for row in _pareto(store, search_id)}
        trials = [t for t in store.trials(search_id) if t.number in front]
        console.print(trials_table(trials, search.domains, title="Pareto front (mean, worst domain)"))
    console.print(experts_table(models, title="Experts and their efficiency settings"))


def _pareto(store, search_id: int) -> list[dict]:
    from dmo.search.objectives import pareto_front

    finished = store.trials(search_id)
    return [{"number": finished[i].number, "weights": finished[i].weights, "objective": list(finished[i].objective)}
            for i in pareto_front([t.objective for t in finished])]


def _announce_model(model) -> None:
    seconds = (model.metrics or {}).get("train_seconds")
    what = f"{model.kind} {model.domain or ''}".strip()
    console.print(f"[green]✓[/] {what} ready" + (f" (trained in {seconds:.0f} s)" if seconds else ""))


__all__ = ["app", "report", "store_url_for"]
