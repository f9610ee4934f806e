"""Bad URLs, unreachable servers, locked or read-only files: a StoreError, password masked."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from dmo.errors import StoreError
from storage import Store

SECRET_URL = "postgresql+psycopg://u:secret@127.0.0.1:1/x"


def test_unreachable_server_is_retried_then_reported_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dmo.storage")
    started = time.monotonic()
    with pytest.raises(StoreError) as raised:
        Store.open(SECRET_URL, retry_s=0.6)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 4.0  # retried for the budget, then gave up
    text = str(raised.value)
    assert "secret" not in text and "u:***@127.0.0.1:1/x" in text
    assert "Connection refused" in text
    assert caplog.records, "retries are logged"
    assert all("secret" not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a database URL"),
        ("mysql://u:secret@db/x", "unsupported database backend 'mysql'"),
        ("postgresql+pg8000://u:secret@db/x", "no database driver"),
        ("sqlite:////proc/no/such/dir/dmo.sqlite", "cannot create the directory"),
    ],
)
def test_unusable_urls_fail_at_once(url: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(StoreError, match=message) as raised:
        Store.open(url, retry_s=5.0)
    assert time.monotonic() - started < 1.0  # permanent errors are not retried
    assert "secret" not in str(raised.value)


def test_bare_postgresql_scheme_means_psycopg() -> None:
    with pytest.raises(StoreError) as raised:
        Store.open("postgresql://u:secret@127.0.0.1:1/x", retry_s=0.1)
    assert "postgresql+psycopg://u:***@" in str(raised.value)


def test_locked_sqlite_is_retried_then_reported(tmp_path: Path) -> None:
    path = tmp_path / "dmo.sqlite"
    Store.open(f"sqlite:///{path}").dispose()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    store = Store.open(f"sqlite:///{path}", upgrade=False, retry_s=0.4)
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match="database is locked"):
            _write(store, "h")
        assert time.monotonic() - started < 3.0
        assert store.list_models() == []  # WAL: readers are not blocked by the writer
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.dispose()


def test_write_waits_for_a_lock_released_within_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "dmo.sqlite"
    Store.open(f"sqlite:///{path}").dispose()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    releaser = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    releaser.start()
    try:
        with Store.open(f"sqlite:///{path}", upgrade=False, retry_s=5.0) as store:
            assert _write(store, "h").config_hash == "h"
    finally:
        releaser.join()
        holder.close()


def test_read_only_sqlite_reads_but_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "dmo.sqlite"
    with Store.open(f"sqlite:///{path}") as store:
        _write(store, "h")
    read_only_url = f"sqlite:///file:{path}?mode=ro&uri=true"
    with Store.open(read_only_url, upgrade=False, retry_s=0.2) as read_only:
        assert [m.config_hash for m in read_only.list_models()] == ["h"]
        with pytest.raises(StoreError, match="readonly database") as raised:
            _write(read_only, "h2")
    assert raised.value.hint is not None and "read-only" in raised.value.hint


def _write(store: Store, config_hash: str):
    return store.start_model(kind="base", config_hash=config_hash, domain=None, base_id=None, training={},
                             finetune="full", efficiency={})


def test_missing_tables_point_at_upgrade(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "empty.sqlite").close()
    with Store.open(f"sqlite:///{tmp_path / 'empty.sqlite'}", upgrade=False, retry_s=0.2) as store:
        with pytest.raises(StoreError) as raised:
            store.list_searches()
    assert raised.value.hint is not None and "dmo db upgrade" in raised.value.hint


@pytest.mark.postgres
def test_missing_postgres_database_fails_at_once_with_a_hint(pg_database: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_database).set(database="dmo_no_such_db", password="secret")
    started = time.monotonic()
    with pytest.raises(StoreError, match="does not exist") as raised:
        Store.open(url.render_as_string(hide_password=False), retry_s=5.0)
    assert time.monotonic() - started < 2.0
    assert "secret" not in str(raised.value) and "createdb" in (raised.value.hint or "")
