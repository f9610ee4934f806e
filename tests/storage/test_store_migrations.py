"""Migrations build the schema from nothing, are idempotent and match the ORM models."""

from __future__ import annotations

import multiprocessing

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from storage import VERSION_TABLE, Store, head_revision
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
        assert store.revision() == head_revision() == "0001"
    tables = _tables(store_url)
    assert OUR_TABLES <= tables
    assert VERSION_TABLE in tables
    assert "alembic_version" not in tables  # left free for Optuna


def test_upgrade_twice_is_a_noop_and_keeps_data(store: Store, store_url: str) -> None:
    dataset = store.upsert_dataset("ocr", {"kind": "synthetic"}, {"train": 10}, "h1")
    before_tables, before_versions = _tables(store_url), _version_rows(store_url)
    store.upgrade()
    with Store.open(store_url, retry_s=2.0) as again:
        assert again.list_datasets() == [dataset]
    assert _tables(store_url) == before_tables
    assert _version_rows(store_url) == before_versions == [("0001",)]


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
    with Store.open(store_url, upgrade=False, retry_s=2.0) as store:
        assert store.revision() is None
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
    assert _version_rows(store_url) == [("0001",)]
