"""Drive one search: ask Optuna for mixtures, score proxies on a pool, tell and record.

Optuna is driven directly (ask/tell) over an evaluator pool instead of through
Ray Tune: each evaluator keeps its task-vector bank for the whole search, the
study and our trial rows live in one database, and resuming is just running
this loop again (see docs/search.md). Trials in flight = pool size; with one
evaluator the same seed gives the same trials.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import count

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from dmo.config.schema import DmoConfig
from dmo.errors import SearchError
from dmo.search.objectives import objective_values
from dmo.search.pool import EvaluatorPool
from dmo.search.proxy import ProxyResult
from dmo.search.samplers import suggest_weights
from dmo.search.study import open_study
from storage import SearchRecord, Store


@dataclass(frozen=True)
class SearchOutcome:
    search_id: int
    completed: int
    pruned: int
    failed: int
    status: str


@dataclass
class _InFlight:
    trial: optuna.Trial
    weights: list[float]
    phase: str  # "subset" (pruning probe) or "full"
    started: float


def run_search(
    store: Store,
    search: SearchRecord,
    config: DmoConfig,
    pool: EvaluatorPool,
    *,
    show_progress: bool = True,
    stale_wait_s: float | None = None,
) -> SearchOutcome:
    """Run (or resume) `search` until it has `search.trials` finished trials."""
    settings = config.search
    target = int(search.config.get("trials", settings.trials))
    study = open_study(store.url, search.study_name, config, sampler=search.sampler, seed=int(search.config.get("seed", settings.seed)))
    _recover_stale_trials(study, store, search.id, wait_s=stale_wait_s if stale_wait_s is not None else 2.5 * settings.heartbeat_s)
    store.set_search_status(search.id, "running")

    names = list(config.domain_names)
    metric = config.evaluation.score
    tickets = count()
    in_flight: dict[int, _InFlight] = {}
    max_failures = max(3, target)

    def finished() -> tuple[int, int, int]:
        states = [t.state for t in study.get_trials(deepcopy=False)]
        return states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED), states.count(TrialState.FAIL)

    completed, pruned, failed = finished()
    progress = _progress(show_progress)
    with progress:
        task = progress.add_task(f"search {search.id}", total=target, completed=completed + pruned, best=_best(study))
        while completed + pruned < target or in_flight:
            while len(in_flight) < pool.size and completed + pruned + len(in_flight) < target and failed < max_failures:
                trial = study.ask()
                # A first beat now: a trial without one is never found stale after a crash.
                # Optuna only beats inside study.optimize(); ask/tell has to call its storage.
                study._storage.record_heartbeat(trial._trial_id)
                weights = [float(w) for w in suggest_weights(trial, names)]
                phase = "subset" if settings.pruning.enabled else "full"
                ticket = next(tickets)
                in_flight[ticket] = _InFlight(trial, weights, phase, time.perf_counter())
                store.record_trial(search_id=search.id, number=trial.number, weights=dict(zip(names, weights)), merge_method=settings.merge.method, params=dict(settings.merge.params), scores={}, objective=[], state="running", duration_s=None)
                pool.submit(ticket, weights, settings.pruning.subset if phase == "subset" else None)
            if not in_flight:
                break  # too many failures: nothing left to wait for
            for ticket, outcome in pool.wait(timeout=max(1.0, settings.heartbeat_s / 3)):
                flight = in_flight.pop(ticket)
                resubmit = _finish(study, store, search.id, flight, outcome, names, metric, config)
                if resubmit:
                    in_flight[ticket] = _InFlight(flight.trial, flight.weights, "full", flight.started)
                    pool.submit(ticket, flight.weights, None)
            for flight in in_flight.values():
                study._storage.record_heartbeat(flight.trial._trial_id)
            completed, pruned, failed = finished()
            progress.update(task, completed=completed + pruned, best=_best(study))

    status = "finished" if completed + pruned >= target else "failed"
    store.set_search_status(search.id, status, error=None if status == "finished" else f"{failed} trials failed")
    return SearchOutcome(search.id, completed, pruned, failed, status)


def _finish(study, store: Store, search_id: int, flight: _InFlight, outcome, names, metric: str, config: DmoConfig) -> bool:
    """Tell Optuna and the store how a trial ended; True when it goes on to the full set."""
    trial = flight.trial
    settings = config.search
    common = dict(search_id=search_id, number=trial.number, weights=dict(zip(names, flight.weights)), merge_method=settings.merge.method, params=dict(settings.merge.params))
    if isinstance(outcome, BaseException):
        study.tell(trial, state=TrialState.FAIL)
        store.record_trial(**common, scores={}, objective=[], state="fail", duration_s=time.perf_counter() - flight.started, efficiency={"error": f"{type(outcome).__name__}: {outcome}"[:500]})
        return False
    result: ProxyResult = outcome
    values = objective_values(result.scores[metric], settings.objective, names)
    if flight.phase == "subset":
        trial.report(values[0], step=0)
        if trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            store.record_trial(**common, scores=result.scores[metric], objective=list(values), state="pruned", duration_s=time.perf_counter() - flight.started, routing=result.routing)
            return False
        return True
    study.tell(trial, list(values))
    store.record_trial(
        **common,
        scores=result.scores[metric],
        objective=list(values),
        state="complete",
        duration_s=time.perf_counter() - flight.started,
        routing=result.routing,
        efficiency={"merge_seconds": result.merge_seconds, "eval_seconds": result.eval_seconds, "samples": result.samples, "scores_by_metric": result.scores},
    )
    return False


def _recover_stale_trials(study: optuna.Study, store: Store, search_id: int, *, wait_s: float) -> None:
    """Fail (and re-enqueue) trials a dead driver left RUNNING; refuse if a live driver owns them."""
    deadline = time.monotonic() + wait_s
    while True:
        optuna.storages.fail_stale_trials(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            break
        if time.monotonic() > deadline:
            raise SearchError(
                f"search {search_id} has {len(running)} trials still sending heartbeats",
                hint="another driver is running it; wait for it or stop it first",
            )
        time.sleep(1.0)
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    for row in store.trials(search_id, state="running"):
        if states.get(row.number) == TrialState.FAIL:
            store.record_trial(search_id=search_id, number=row.number, weights=row.weights, merge_method=row.merge_method, params=row.params, scores={}, objective=[], state="fail", duration_s=None, efficiency={"error": "driver died; trial retried"})


def _best(study: optuna.Study) -> float:
    try:
        if len(study.directions) > 1:
            return float("nan")
        return float(study.best_value)
    except ValueError:
        return float("nan")


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} trials"),
        TextColumn("best {task.fields[best]:.2f}"),
        TimeElapsedColumn(),
        disable=not enabled,
        console=Console(stderr=True),  # stdout stays clean for --json
    )
