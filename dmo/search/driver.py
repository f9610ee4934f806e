"""Drive one search: ask Optuna for a mixture, evaluate its proxy on a pool, tell the result.

Optuna is driven directly (ask/tell) over an evaluator pool instead of through
Ray Tune: each evaluator keeps its task-vector bank for the whole search, and
resuming is just running this loop again (see docs/search.md). Trials in
flight = pool size; with one evaluator the same seed gives the same trials.

The driver knows neither the store nor the screen: every trial's outcome goes
to a :class:`TrialJournal` (the store, in :mod:`dmo.search.searches`) and
progress to an ``on_progress`` callback (a progress bar, in the CLI).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from itertools import count
from typing import Protocol

import optuna
from optuna.trial import TrialState

from dmo.config.schema import DmoConfig, ObjectiveSettings
from dmo.evaluation.benchmarks import search_score
from dmo.mixture import Mixture
from dmo.search.objectives import mean_weights, objective_values
from dmo.search.pool import EvaluatorPool, ProxyRequest, ProxyResult
from dmo.search.samplers import suggest_mixture
from storage.optuna_trials import record_heartbeat


@dataclass(frozen=True)
class SearchPlan:
    """What the loop needs from a search's config."""

    domains: tuple[str, ...]
    trials: int
    metric: str
    objective: ObjectiveSettings
    benchmarks: tuple[str, ...]  # what the objective is computed over
    subset: int | None  # dev samples per benchmark of the pruning probe; None = no pruning
    heartbeat_s: int
    anchors: Mapping[str, tuple[int, ...]] | None = None  # the samples every trial is scored on; None = all

    @classmethod
    def of(cls, config: DmoConfig, anchors: Mapping[str, tuple[int, ...]] | None = None) -> SearchPlan:
        search = config.search
        objective = search.objective
        weights = mean_weights(config)
        if objective.kind == "mean" and weights is not None:
            objective = ObjectiveSettings(kind="weighted", weights=weights)  # the mean, weighted as the benchmarks say
        return cls(
            domains=config.domain_names,
            trials=search.trials,
            metric=search_score(config),
            objective=objective,
            benchmarks=config.benchmark_names,
            subset=search.pruning.subset if search.pruning.enabled else None,
            heartbeat_s=search.heartbeat_s,
            anchors=anchors,
        )


@dataclass(frozen=True)
class TrialOutcome:
    """One trial as the journal records it: started (``running``) or ended."""

    number: int
    mixture: Mixture
    state: str  # running | complete | pruned | fail
    objective: tuple[float, ...] = ()
    result: ProxyResult | None = None
    error: str | None = None
    seconds: float | None = None


class TrialJournal(Protocol):
    def record(self, outcome: TrialOutcome) -> None: ...


@dataclass(frozen=True)
class SearchProgress:
    done: int  # complete + pruned
    target: int
    best: float | None


@dataclass(frozen=True)
class DriveResult:
    completed: int
    pruned: int
    failed: int
    exhausted: bool  # the sampler had no new point left (a grid smaller than the budget)


@dataclass(frozen=True)
class SearchOutcome:
    search_id: int
    completed: int
    pruned: int
    failed: int
    status: str  # finished | failed | interrupted
    note: str | None = None  # why the search ended before its trial budget, if it did


@dataclass(frozen=True)
class _Flight:
    trial: optuna.Trial
    mixture: Mixture
    limit: int | None  # the pruning probe's samples per benchmark, None for the full dev set
    started: float


def drive(
    study: optuna.Study,
    pool: EvaluatorPool,
    plan: SearchPlan,
    journal: TrialJournal,
    *,
    on_progress: Callable[[SearchProgress], None] | None = None,
) -> DriveResult:
    """Run until ``plan.trials`` trials finished, the failures pile up or the sampler runs out."""
    tickets = count()
    in_flight: dict[int, _Flight] = {}
    max_failures = max(3, plan.trials)
    is_exhausted = getattr(study.sampler, "is_exhausted", None)
    exhausted = False
    completed, pruned, failed = _counts(study)
    _report(on_progress, study, completed + pruned, plan.trials)
    # A proxy is deterministic: a mixture proposed again (a sampler converging on a vertex asks the
    # same point over and over) is told its earlier full result instead of being scored again.
    scored: dict[str, ProxyResult] = {}
    while True:
        # ask: fill the pool while the budget, the failure limit and the sampler allow
        while len(in_flight) < pool.size and completed + pruned + len(in_flight) < plan.trials:
            if failed >= max_failures:
                break
            if is_exhausted is not None and is_exhausted(study):
                exhausted = True  # a grid longer than the budget is not evaluated twice
                break
            flight = _ask(study, plan)
            journal.record(TrialOutcome(flight.trial.number, flight.mixture, "running"))
            earlier = scored.get(flight.mixture.key())
            if earlier is not None:
                _tell(study, replace(flight, limit=None), earlier, plan, journal)
                completed, pruned, failed = _counts(study)
                continue
            ticket = next(tickets)
            in_flight[ticket] = flight
            pool.submit(ticket, ProxyRequest.proxy(flight.mixture.weights, limit=flight.limit, subsets=plan.anchors))
        if not in_flight:
            break
        # evaluate, then tell
        for ticket, outcome in pool.wait(timeout=max(1.0, plan.heartbeat_s / 3)):
            flight = in_flight.pop(ticket)
            if flight.limit is None and isinstance(outcome, ProxyResult):
                scored[flight.mixture.key()] = outcome
            follow_up = _tell(study, flight, outcome, plan, journal)
            if follow_up is not None:
                in_flight[ticket] = follow_up
                pool.submit(ticket, ProxyRequest.proxy(follow_up.mixture.weights, subsets=plan.anchors))
        for flight in in_flight.values():
            record_heartbeat(study, flight.trial)
        completed, pruned, failed = _counts(study)
        _report(on_progress, study, completed + pruned, plan.trials)
    return DriveResult(completed, pruned, failed, exhausted)


def _ask(study: optuna.Study, plan: SearchPlan) -> _Flight:
    trial = study.ask()
    # A first beat now: a trial without one is never found stale after a crash.
    record_heartbeat(study, trial)
    return _Flight(trial, suggest_mixture(trial, plan.domains), plan.subset, time.perf_counter())


def _tell(
    study: optuna.Study,
    flight: _Flight,
    outcome: ProxyResult | BaseException,
    plan: SearchPlan,
    journal: TrialJournal,
) -> _Flight | None:
    """Tell Optuna and the journal how an evaluation ended; a probe that survives comes back
    as the flight of its full evaluation."""
    trial, seconds = flight.trial, time.perf_counter() - flight.started
    # The journal first, Optuna second: a driver killed between the two leaves a RUNNING trial
    # whose result the store holds, and the resume tells Optuna that result (study.settle_stale_trials).
    # The other order left a trial Optuna counted complete and the store never saw finish.
    if isinstance(outcome, BaseException):
        error = f"{type(outcome).__name__}: {outcome}"[:500]
        journal.record(TrialOutcome(trial.number, flight.mixture, "fail", error=error, seconds=seconds))
        study.tell(trial, state=TrialState.FAIL)
        return None
    values = objective_values(outcome.scores[plan.metric], plan.objective, plan.benchmarks)
    if flight.limit is not None:  # the pruning probe on a dev subset
        trial.report(values[0], step=0)
        if not trial.should_prune():
            return _Flight(trial, flight.mixture, None, flight.started)
        journal.record(TrialOutcome(trial.number, flight.mixture, "pruned", values, outcome, seconds=seconds))
        study.tell(trial, state=TrialState.PRUNED)
        return None
    journal.record(TrialOutcome(trial.number, flight.mixture, "complete", values, outcome, seconds=seconds))
    study.tell(trial, list(values))
    return None


def _counts(study: optuna.Study) -> tuple[int, int, int]:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED), states.count(TrialState.FAIL)


def _report(on_progress: Callable[[SearchProgress], None] | None, study: optuna.Study, done: int, target: int) -> None:
    if on_progress is None:
        return
    best = None
    if len(study.directions) == 1:
        try:
            best = float(study.best_value)
        except ValueError:  # no complete trial yet
            best = None
    on_progress(SearchProgress(done, target, best))
