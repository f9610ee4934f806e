"""A transaction is all or nothing, also when it is retried after a transient failure."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage import Store
from storage.db import Database, is_transient
from storage.models import ModelRow


def _count(database: Database) -> int:
    return database.transaction(
        lambda s: s.scalar(sa.select(sa.func.count()).select_from(ModelRow)),
        write=False, doing="counting",
    )


def _row() -> ModelRow:
    return ModelRow(kind="base", config_hash="h", status="running", training={}, finetune="full",
                    efficiency={}, metrics={})


def _locked() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))


def test_a_failing_write_leaves_no_row(store: Store, store_url: str) -> None:
    database = Database(store_url, retry_s=1.0)

    def half_written(session: Session) -> None:
        session.add(_row())
        session.flush()  # the row reached the database ...
        raise ValueError("... and then the caller failed")

    try:
        with pytest.raises(ValueError):
            database.transaction(half_written, write=True, doing="writing")
        assert _count(database) == 0
    finally:
        database.dispose()


def test_a_retried_write_is_applied_once(store: Store, store_url: str) -> None:
    database = Database(store_url, retry_s=5.0)
    calls = []

    def flaky(session: Session) -> None:
        calls.append(1)
        session.add(_row())
        session.flush()
        if len(calls) == 1:
            raise _locked()  # transient: the whole transaction runs again

    try:
        database.transaction(flaky, write=True, doing="writing")
        assert len(calls) == 2
        assert _count(database) == 1
    finally:
        database.dispose()


def test_only_transient_errors_are_retried() -> None:
    assert is_transient(_locked())
    refused = sqlite3.OperationalError('server at "h", port 1 failed: Connection refused')
    assert is_transient(sa.exc.OperationalError("SELECT 1", {}, refused))
    missing = sqlite3.OperationalError('FATAL:  database "x" does not exist')
    assert not is_transient(sa.exc.OperationalError("SELECT 1", {}, missing))
    duplicate = sqlite3.IntegrityError("UNIQUE constraint failed")
    assert not is_transient(sa.exc.IntegrityError("INSERT", {}, duplicate))
    assert not is_transient(ValueError("not a database error"))
