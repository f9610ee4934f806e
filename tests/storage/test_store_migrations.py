"""Migrations build the schema from nothing, are idempotent and match the ORM models."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dmo.errors import StoreError
from storage import VERSION_TABLE, Store, head_revision
from storage.db import SCHEMA_REVISION
from storage.models import Base

OUR_TABLES = {t for t in Base.metadata.tables}


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _version_rows(url: str) -> list[tuple[str, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.execute(sa.text(f"SELECT * FROM {VERSION_TABLE}"))]
    finally:
        engine.dispose()


def test_upgrade_creates_every_table_on_an_empty_database(store_url: str) -> None:
    assert not OUR_TABLES & _tables(store_url)
    with Store.open(store_url, retry_s=2.0) as store:
        assert store.revision() == head_revision() == SCHEMA_REVISION
    tables = _tables(store_url)
    assert OUR_TABLES <= tables
    assert VERSION_TABLE in tables
    assert "alembic_version" not in tables  # left free for Optuna


def test_upgrade_twice_is_a_noop_and_keeps_data(store: Store, store_url: str) -> None:
    model = store.start_model(kind="base", config_hash="h1", domain=None, base_id=None, training={},
                              finetune="full", efficiency={})
    before_tables, before_versions = _tables(store_url), _version_rows(store_url)
    store.upgrade()
    with Store.open(store_url, retry_s=2.0) as again:
        assert again.list_models() == [model]
    assert _tables(store_url) == before_tables
    assert _version_rows(store_url) == before_versions == [(SCHEMA_REVISION,)]


def test_the_reader_s_revision_is_the_newest_migration() -> None:
    assert SCHEMA_REVISION == head_revision()


def _old_search_config(tiny: dict) -> dict:
    """A search's config as revision 0001 stored it: the config with trials/seed/base_id patched in."""
    return {**tiny, "search": {**tiny["search"], "sampler": "random", "seed": 3, "trials": 7},
            "trials": 7, "seed": 3, "base_id": None}


def test_searches_of_a_0001_store_become_typed_snapshots(store_url: str, tiny_config) -> None:
    from alembic import command

    from storage.db import alembic_config

    command.upgrade(alembic_config(store_url), "0001")
    old = _old_search_config(tiny_config.model_dump(mode="json"))
    engine = sa.create_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text("INSERT INTO dmo_searches (name, study_name, config, sampler, objective, domains, status, "
                        "created_at, updated_at) VALUES ('old', 'old-study', :config, 'random', :objective, "
                        ":domains, 'finished', :now, :now)"),
                {"config": json.dumps(old), "objective": json.dumps({"kind": "mean", "metric": "exact_match"}),
                 "domains": json.dumps(list(tiny_config.domain_names)), "now": datetime.now(UTC)},
            )
    finally:
        engine.dispose()
    with Store.open(store_url, retry_s=2.0) as store:
        (search,) = store.list_searches()
    assert (search.trials_target, search.snapshot.seed, search.snapshot.base_id) == (7, 3, None)
    assert search.config.search.sampler == "random" and search.config.domain_names == tiny_config.domain_names
    assert "dmo_datasets" not in _tables(store_url)
    command.downgrade(alembic_config(store_url), "0001")
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as connection:
            config, objective = connection.execute(sa.text("SELECT config, objective FROM dmo_searches")).one()
    finally:
        engine.dispose()
    restored = json.loads(config) if isinstance(config, str) else config
    assert (restored["trials"], restored["seed"], restored["search"]["sampler"]) == (7, 3, "random")
    assert "dmo_datasets" in _tables(store_url)


def test_migrated_schema_matches_the_orm_models(store: Store, store_url: str) -> None:
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_name": _ours_only}
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def _ours_only(name: str | None, type_: str, parent_names: object) -> bool:
    return type_ != "table" or (name is not None and name in OUR_TABLES)


def test_opening_without_upgrade_leaves_the_database_empty(store_url: str) -> None:
    if store_url.startswith("sqlite:///"):
        sqlite3.connect(store_url.removeprefix("sqlite:///")).close()  # an empty database file
    with Store.open(store_url, upgrade=False, retry_s=2.0) as store:
        assert store.revision() is None
    assert not OUR_TABLES & _tables(store_url)
    with pytest.raises(StoreError, match="has no dmo tables"):
        Store.open_existing(store_url, retry_s=2.0)
    assert not OUR_TABLES & _tables(store_url)


def _open_and_upgrade(url: str, barrier: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    Store.open(url, retry_s=20.0).dispose()


@pytest.mark.slow
def test_concurrent_first_upgrades_serialise(store_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(3)
    workers = [
        context.Process(target=_open_and_upgrade, args=(store_url, barrier)) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert _version_rows(store_url) == [(SCHEMA_REVISION,)]


def test_replicates_of_a_mixture_are_stored_apart_and_a_downgrade_keeps_the_first(store_url: str, tiny_config) -> None:
    from alembic import command

    from search_support import mixture, search_row
    from storage.db import alembic_config

    with Store.open(store_url, retry_s=2.0) as store:
        search = search_row(store, tiny_config, with_study=False)
        validation = store.create_validation(search.id, config={})
        one = mixture(general=0.5, ocr=0.25, counting=0.25)
        for replicate in (0, 1, 1):  # the same replicate again replaces, never duplicates
            store.record_mixture_result(validation.id, mixture=one, trial_id=None, model_id=None,
                                        proxy_scores={"ocr": 0.1}, real_scores={"ocr": 0.2 + replicate},
                                        replicate=replicate, group="draw")
        results = store.latest_validation(search.id).results
    assert [(r.replicate, r.group, r.real_scores["ocr"]) for r in results] == [(0, "draw", 0.2), (1, "draw", 1.2)]
    command.downgrade(alembic_config(store_url), "0003")
    command.upgrade(alembic_config(store_url), "head")
    with Store.open(store_url, retry_s=2.0) as store:
        (kept,) = store.latest_validation(search.id).results
    assert (kept.replicate, kept.group, kept.real_scores["ocr"]) == (0, None, 0.2)
