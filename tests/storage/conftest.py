"""One storage suite, every backend: the `store_url` / `store` fixtures run each test on
SQLite (a file under tmp_path) and PostgreSQL (a fresh database per test module).

PostgreSQL comes from $DMO_TEST_PG_URL (default the local trust-auth server). When
it cannot be reached its tests skip, unless $DMO_REQUIRE_POSTGRES=1 (CI) makes them fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from pg_support import fresh_database
from search_support import project_config, search_row
from storage import SearchRecord, Store

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module")
def pg_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A uniquely named database for this test module, dropped afterwards."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:30]
    with fresh_database(f"dmo_t_{module}") as url:
        yield url


def _reset_pg_schema(url: str) -> None:
    """Every test starts from an empty database without paying for CREATE DATABASE."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("DROP SCHEMA public CASCADE"))
            connection.execute(sa.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """URL of an empty database (no tables yet) on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dmo.sqlite'}"
    url = request.getfixturevalue("pg_database")
    _reset_pg_schema(url)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url, retry_s=2.0)
    try:
        yield opened
    finally:
        opened.dispose()


@pytest.fixture
def make_search(store: Store) -> Callable[..., SearchRecord]:
    """A search over domains a, b, c with three experts (their rows only)."""
    counter = iter(range(1_000_000))

    def make(name: str = "s", *, expert_ids: list[int] | None = None, study_name: str | None = None,
             **fields: Any) -> SearchRecord:
        n = next(counter)
        if expert_ids is None:
            expert_ids = [
                store.start_model(
                    kind="expert", config_hash=f"{name}-{n}-{domain}", domain=domain, base_id=None,
                    training={"steps": 3}, finetune="full", efficiency={"schedule": "constant"},
                ).id
                for domain in ("a", "b", "c")
            ]
        config = project_config(project__name=name, search__trials=4, **fields)
        return search_row(store, config, expert_ids=tuple(expert_ids),
                          study_name=study_name or f"{name}-{n}-{os.getpid()}", with_study=False)

    return make
