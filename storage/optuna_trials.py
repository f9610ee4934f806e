"""The two writes to Optuna's trial storage that its public API does not offer.

Optuna beats a trial's heartbeat only inside ``study.optimize()``; a search
driven by ask/tell over an evaluator pool has to beat through the study's
storage itself, or a trial left RUNNING by a dead driver is never found
stale. A sampler that assigns points (the simplex grid) records them as
trial system attributes, as Optuna's own GridSampler does. Both reach into
``study._storage``; this module is the one place that does, so an Optuna
upgrade that changes it breaks here and nowhere else (a test checks that).
"""

from __future__ import annotations

from typing import Any

import optuna


def record_heartbeat(study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial) -> None:
    study._storage.record_heartbeat(trial._trial_id)


def set_trial_system_attr(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, key: str, value: Any
) -> None:
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


__all__ = ["record_heartbeat", "set_trial_system_attr"]
