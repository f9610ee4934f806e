"""The Optuna side of a search: its study lives in the project database.

Optuna's tables share the database with ours (our migrations use their own
version table). Heartbeats let a resumed search recognise trials a dead
driver left RUNNING; `RetryFailedTrialCallback` enqueues them again.
"""

from __future__ import annotations

import time
import uuid
import warnings

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.exc import DBAPIError

from dmo.config.schema import DmoConfig
from dmo.search.objectives import objective_directions, objective_names
from dmo.search.samplers import enqueue_warm_start, make_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Heartbeats, metric names and stale-trial recovery are marked experimental; we rely on them
# deliberately (tests cover them), so their warnings would only be noise for users.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")

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
            # Searches started at once on a fresh database all create Optuna's tables; on
            # PostgreSQL the losers fail with "... already exists" (their DDL rolled back).
            # Opening again finds the winner's tables.
            if "already exists" not in str(error) or attempt == _SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def open_study(url: str, study_name: str, config: DmoConfig, *, sampler: str, seed: int) -> optuna.Study:
    """Create the study, or load it to resume: the sampler is rebuilt with the same seed."""
    settings = config.search
    multi = settings.objective.kind == "multi"
    storage = optuna_storage(url, heartbeat_s=settings.heartbeat_s)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
        if settings.pruning.enabled
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        sampler=make_sampler(sampler, seed=seed, num_domains=len(config.domains), multi_objective=multi),
        pruner=pruner,
        directions=objective_directions(settings.objective),
        load_if_exists=True,
    )
    study.set_metric_names(objective_names(settings.objective))
    enqueue_warm_start(study, config.domain_names, settings.warm_start)
    return study
