"""The store's API: the only door to the database for the rest of dmo.

Every method is one transaction (retried as a whole on transient failures)
and returns frozen records from :mod:`storage.records`, never ORM objects.
Writes that can race (two workers recording the same trial, two experts with
the same config hash) resolve through unique constraints: the loser reads the
winner's row instead of writing a second one.

Two ways in: :meth:`Store.open` creates and migrates (commands that write a
project's store), :meth:`Store.open_existing` changes nothing and refuses a
store that is missing or at another schema revision (commands that read).
"""

from __future__ import annotations

from typing import Any

from dmo.errors import StoreError
from storage import db
from storage.model_rows import ModelRows
from storage.search_rows import SearchRows
from storage.validation_rows import ValidationRows


def _reopen(url: str, retry_s: float) -> Store:
    return Store.open(url, upgrade=False, retry_s=retry_s)


class Store(ModelRows, SearchRows, ValidationRows):
    """dmo's tables in one database.

    Safe to share between threads; pickling it (e.g. into a Ray task) reopens
    the same URL in the receiving process without migrating.
    """

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True, retry_s: float = db.DEFAULT_RETRY_S) -> Store:
        """Connect, retrying transient failures for ``retry_s`` seconds.

        ``upgrade=True`` creates the database file (SQLite) and migrates our
        tables to the newest revision; ``upgrade=False`` creates nothing and
        only checks that the server answers.
        """
        database = db.Database(url, retry_s=retry_s, create=upgrade)
        try:
            if upgrade:
                database.upgrade()
            else:
                database.ping()
        except BaseException:
            database.dispose()
            raise
        return cls(database)

    @classmethod
    def open_existing(cls, url: str, *, retry_s: float = db.DEFAULT_RETRY_S) -> Store:
        """An existing store at this dmo's schema revision; creates, migrates and locks nothing."""
        store = cls.open(url, upgrade=False, retry_s=retry_s)
        try:
            revision, head = store.revision(), db.SCHEMA_REVISION
        except BaseException:
            store.dispose()
            raise
        if revision != head:
            store.dispose()
            if revision is None:
                raise StoreError("the database has no dmo tables", where=store.url_masked,
                                 hint=db.MISSING_STORE_HINT)
            raise StoreError(f"the store's schema is at revision {revision}, this dmo needs {head}",
                             where=store.url_masked, hint="run `dmo db upgrade` to migrate it")
        return store

    @property
    def url(self) -> str:
        """The real URL, password included: hand it to Optuna's RDBStorage, never print it."""
        return self._db.url_text

    @property
    def url_masked(self) -> str:
        return self._db.url_masked

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.backend

    def __repr__(self) -> str:
        return f"Store({self.url_masked!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (self.url, self._db.retry_s))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def dispose(self) -> None:
        self._db.dispose()

    def upgrade(self) -> None:
        """``alembic upgrade head`` on our version table; a no-op when already there."""
        self._db.upgrade()

    def revision(self) -> str | None:
        """Our schema revision (``dmo_alembic_version``); None before the first upgrade."""
        return self._db.revision()
