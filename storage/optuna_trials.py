"""The calls to Optuna's trial storage that its public API does not offer.

Optuna beats a trial's heartbeat only inside ``study.optimize()``; a search
driven by ask/tell over an evaluator pool has to beat through the study's
storage itself, or a trial left RUNNING by a dead driver is never found
stale; and a resume must know which RUNNING trials are stale before Optuna
fails them, to finish the ones whose result the store already holds. A
sampler that assigns points (the simplex grid) records them as
trial system attributes, as Optuna's own GridSampler does. All reach into
``study._storage``; this module is the one place that does, so an Optuna
upgrade that changes it breaks here and nowhere else (a test checks that).
"""

from __future__ import annotations

import copy
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import TrialState


def record_heartbeat(study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial) -> None:
    study._storage.record_heartbeat(trial._trial_id)


def beat_the_unbeaten(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> list[int]:
    """Give each of these RUNNING trials that has never beaten a first heartbeat; return their numbers.

    Optuna never finds a trial without a heartbeat stale, and a driver killed between
    ``study.ask()`` and its first beat leaves exactly such a trial: without this it stays
    RUNNING for ever and every resume waits on it. A live driver beats over ours; a dead
    one's trial turns stale one grace period from now.
    """
    if not trials:
        return []
    table = sqlalchemy.table("trial_heartbeats", sqlalchemy.column("trial_id"))
    ids = [t._trial_id for t in trials]
    rdb = getattr(study._storage, "_backend", study._storage)  # Optuna wraps its RDBStorage in a cache
    with rdb.engine.connect() as connection:
        beaten = set(connection.execute(
            sqlalchemy.select(table.c.trial_id).where(table.c.trial_id.in_(ids))).scalars())
    unbeaten = [t for t in trials if t._trial_id not in beaten]
    for trial in unbeaten:
        study._storage.record_heartbeat(trial._trial_id)
    return [t.number for t in unbeaten]


def stale_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's RUNNING trials whose heartbeat is older than the grace period, in one look."""
    stale_ids = set(study._storage._get_stale_trial_ids(study._study_id))
    return [t for t in study.get_trials(deepcopy=False) if t._trial_id in stale_ids]


def fail_and_retry(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
    """Fail one stale trial and hand it to the storage's stale-trial callback (which enqueues it
    again), as ``optuna.storages.fail_stale_trials`` does for all of them at once; False where
    another process ended it first."""
    storage = study._storage
    try:
        if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    callback = storage.get_heartbeat_stale_trial_callback()
    if callback is not None:
        callback(study, copy.deepcopy(storage.get_trial(trial._trial_id)))
    return True


def set_trial_system_attr(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, key: str, value: Any
) -> None:
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


__all__ = ["beat_the_unbeaten", "fail_and_retry", "record_heartbeat", "set_trial_system_attr", "stale_trials"]
