"""Optuna's RDB storage shares the database with our tables; the Alembic histories stay apart."""

from __future__ import annotations

import optuna
import sqlalchemy as sa

from search_support import mixture, project_config, search_row
from storage import VERSION_TABLE, Store
from storage.db import SCHEMA_REVISION


def _versions(url: str) -> dict[str, list[str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: list(connection.scalars(sa.text(f"SELECT version_num FROM {table}")))
                for table in ("alembic_version", VERSION_TABLE)
            }
    finally:
        engine.dispose()


def _optimize(url: str, study_name: str, n_trials: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url=url)
    study = optuna.create_study(
        storage=storage, study_name=study_name, load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.optimize(lambda trial: (trial.suggest_float("u", 0.0, 1.0) - 0.3) ** 2, n_trials=n_trials)
    return study


def test_optuna_study_and_our_tables_share_one_database(store_url: str) -> None:
    # Optuna first, then us, then Optuna again: neither side disturbs the other.
    _optimize(store_url, "mix", n_trials=3)
    with Store.open(store_url, retry_s=2.0) as store:
        config = project_config(("a", "b"), project__name="mix", search__sampler="random")
        search = search_row(store, config, study_name="mix", with_study=False)
        study = _optimize(store.url, "mix", n_trials=2)
        for trial in study.trials:
            u = trial.params["u"]
            store.record_trial(
                search_id=search.id, number=trial.number, mixture=mixture(a=u, b=1 - u),
                merge_method="task_arithmetic", params=trial.params, scores={},
                objective=[trial.value],
                state="complete", duration_s=0.0,
            )
        store.upgrade()  # still a no-op with Optuna's tables present
        assert len(store.trials(search.id)) == 5
        best = store.best_trials(search.id, top_k=1, direction="minimize")
        assert best[0].number == study.best_trial.number

    versions = _versions(store_url)
    assert versions[VERSION_TABLE] == [SCHEMA_REVISION]
    assert len(versions["alembic_version"]) == 1 and versions["alembic_version"] != [SCHEMA_REVISION]
    assert len(optuna.load_study(study_name="mix", storage=store_url).trials) == 5
