"""The Optuna side of a search: its study lives in the project database.

Optuna's tables share the database with ours (our migrations use their own
version table). Heartbeats let a resumed search recognise trials a dead
driver left RUNNING; those whose result the store holds are told it, the
others failed, and `RetryHeartbeatStaleTrialCallback` enqueues them again.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from sqlalchemy.exc import DBAPIError, IntegrityError

from dmo.config.schema import DmoConfig
from dmo.errors import SearchError
from dmo.search.objectives import objective_directions, objective_names
from dmo.search.samplers import enqueue_warm_start, make_sampler
from storage.optuna_trials import beat_the_unbeaten, fail_and_retry, stale_trials

_SCHEMA_ATTEMPTS = 5


def new_study_name(project: str) -> str:
    return f"dmo-{project}-{uuid.uuid4().hex[:12]}"


def optuna_storage(url: str, *, heartbeat_s: int) -> RDBStorage:
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(_SCHEMA_ATTEMPTS):
        try:
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_s,
                grace_period=2 * heartbeat_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2),
            )
        except DBAPIError as error:
            # Searches started at once on a fresh database all create Optuna's tables and stamp
            # its alembic version row. The losers fail: on PostgreSQL with "... already exists"
            # (their DDL rolled back), on SQLite with a unique-constraint IntegrityError on
            # alembic_version (opening writes nothing else that a race could collide on). Opening
            # again finds the winner's tables and row.
            lost_the_race = isinstance(error, IntegrityError) or "already exists" in str(error)
            if not lost_the_race or attempt == _SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def open_study(url: str, study_name: str, config: DmoConfig) -> optuna.Study:
    """Create the study of a search's config, or load it to resume: same sampler, same seed."""
    settings = config.search
    storage = optuna_storage(url, heartbeat_s=settings.heartbeat_s)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
        if settings.pruning.enabled
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        sampler=make_sampler(settings.sampler, seed=settings.seed, num_domains=len(config.domains),
                             multi_objective=settings.objective.kind == "multi"),
        pruner=pruner,
        directions=objective_directions(settings.objective),
        load_if_exists=True,
    )
    study.set_metric_names(objective_names(settings.objective))
    enqueue_warm_start(study, config.domain_names, settings.warm_start)
    return study


def settle_stale_trials(
    study: optuna.Study, read_recorded: Callable[[], Mapping[int, RecordedResult]], *, wait_s: float
) -> list[int]:
    """End the trials a dead driver left RUNNING and return the numbers of every failed trial;
    refuse while a live driver still beats for them.

    A stale trial whose result the store already holds (``read_recorded``: the driver died
    between writing it and telling Optuna) is told that result; any other is failed, and Optuna
    enqueues its mixture again. Each pass judges one snapshot of stale trials and reads the
    store after it: a trial that turned stale between two separate looks could otherwise be
    failed and run again although its result was written.
    """
    deadline = time.monotonic() + wait_s
    beat_the_unbeaten(study, study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    while True:
        stale = stale_trials(study)
        recorded = read_recorded() if stale else {}
        for trial in stale:
            if trial.number in recorded:
                _tell_recorded(study, trial.number, recorded[trial.number])
            else:
                fail_and_retry(study, trial)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            break
        if time.monotonic() > deadline:
            raise SearchError(
                f"study {study.study_name} has {len(running)} trials still sending heartbeats",
                hint="another driver is running this search; wait for it or stop it first",
            )
        time.sleep(1.0)
    return [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))]


@dataclass(frozen=True)
class RecordedResult:
    """A trial's end as the store recorded it."""

    state: str  # complete | pruned | fail
    objective: tuple[float | None, ...]


def _tell_recorded(study: optuna.Study, number: int, result: RecordedResult) -> None:
    # skip_if_finished: another resume may have settled it since the snapshot.
    if result.state == "complete":
        study.tell(number, [math.nan if v is None else v for v in result.objective], skip_if_finished=True)
    else:  # a pruned trial's value is the probe's, reported before it was pruned
        study.tell(number, state=TrialState.PRUNED if result.state == "pruned" else TrialState.FAIL,
                   skip_if_finished=True)
