"""Engines, retries and migrations of the SQL store.

Two backends, picked by the URL: SQLite for one machine (WAL, a busy
timeout, ``BEGIN IMMEDIATE`` for writes so concurrent writers queue instead of
failing) and PostgreSQL through psycopg 3 for a cluster. Everything that can
fail because of the URL or the server is turned into a :class:`StoreError`
whose text never shows the password.

Optuna keeps its RDB tables in the same database and versions them with
Alembic's default table ``alembic_version``; ours live in
:data:`VERSION_TABLE`, so the two histories never meet.

A developer adds a migration with::

    from alembic import command
    from storage.db import alembic_config
    command.revision(alembic_config("sqlite:///x.sqlite"), "what changed", autogenerate=True)
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.orm import Session

from dmo.errors import StoreError

log = logging.getLogger("dmo.storage")

MISSING_STORE_HINT = (
    "`dmo demo` or `dmo search run CONFIG` creates a project's store; to read another one, "
    "pass --store-url, set DMO_STORE_URL, or give the -c CONFIG whose store it is"
)
VERSION_TABLE = "dmo_alembic_version"
# The newest migration in storage/migrations/versions (a test keeps them equal): readers compare
# against it without loading Alembic's script directory.
SCHEMA_REVISION = "0006"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_RETRY_S = 10.0
_RACE_ATTEMPTS = 3

# Explicit list of what we run on; the value is the driver a bare backend name maps to.
SUPPORTED_BACKENDS = {"sqlite": "pysqlite", "postgresql": "psycopg"}

# Serialises concurrent `upgrade` calls on PostgreSQL (any constant 64-bit key).
_PG_MIGRATION_LOCK = 0x646D6F5F6D6967

# Transient on PostgreSQL: connection exceptions, admin shutdown, server starting,
# too many connections, serialisation failure and deadlock (retrying is correct).
_PG_TRANSIENT_SQLSTATES = frozenset(
    {"08000", "08001", "08003", "08004", "08006", "57P01", "57P02", "57P03", "53300", "40001",
     "40P01"}
)
_TRANSIENT_TEXT = (
    "database is locked",
    "database table is locked",
    "connection refused",
    "could not connect",
    "server closed the connection",
    "connection timeout",
    "timeout expired",
    "timed out",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "terminating connection",
    "connection reset",
    "ssl syscall error",
)
# Connection failures that no amount of waiting fixes.
_PERMANENT_TEXT = (
    "does not exist", "authentication failed", "no password supplied", "permission denied"
)

T = TypeVar("T")


# --------------------------------------------------------------------------- URLs


def parse_url(url: str) -> URL:
    """Parse and check a store URL; bare ``postgresql://`` means psycopg 3."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as error:
        raise StoreError(
            f"not a database URL: {error}",
            where="store URL",
            hint="use sqlite:///path/to/dmo.sqlite or postgresql+psycopg://user@host/db",
        ) from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise StoreError(
            f"unsupported database backend '{backend}'",
            where=mask_url(parsed),
            hint=f"supported: {', '.join(SUPPORTED_BACKENDS)}",
        )
    if backend == "postgresql" and "+" not in parsed.drivername:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def mask_url(url: URL | str) -> str:
    """The URL as text with the password replaced by ``***``."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except (ArgumentError, ValueError):
            return "<unparseable URL>"
    return url.render_as_string(hide_password=True)


def scrub(text: str, url: URL) -> str:
    """Remove the URL's password from any text we show or log."""
    password = url.password
    if password and len(str(password)) >= 3:
        text = text.replace(str(password), "***")
    return text


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for in-memory databases."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    return Path(database)


# --------------------------------------------------------------------------- engines


def create_store_engine(url: URL, *, retry_s: float = DEFAULT_RETRY_S, create: bool = True) -> Engine:
    """An engine for ``url``; nothing is connected yet.

    With ``create=False`` a SQLite file that does not exist is an error, and
    nothing (neither the file nor its directory) is created: commands that
    only read the store never leave an empty one behind a mistyped path.

    Use ``engine.execution_options(dmo_write=True)`` for write transactions:
    on SQLite they begin with ``BEGIN IMMEDIATE``, so a writer takes the write
    lock up front (waiting up to the busy timeout) instead of failing when it
    upgrades a read lock that another writer invalidated.
    """
    masked = mask_url(url)
    backend = url.get_backend_name()
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "postgresql":
        # libpq counts whole seconds and treats anything below 2 as 2.
        kwargs["connect_args"] = {"connect_timeout": max(2, min(10, int(retry_s + 0.999)))}
    elif backend == "sqlite":
        path = sqlite_path(url)
        if path is not None and not create and not path.is_file():
            raise StoreError(
                "no store here: nothing has been stored at this path yet",
                where=masked,
                hint=MISSING_STORE_HINT,
            )
        if path is not None and create and "mode=ro" not in str(url):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(
                    f"cannot create the directory of the SQLite file: {error.strerror}",
                    where=masked,
                    hint="point project.store_url (or DMO_STORE_URL) at a writable place",
                ) from None
    try:
        engine = sa.create_engine(url, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as error:
        raise StoreError(
            f"no database driver for '{url.drivername}': {error}",
            where=masked,
            hint="install the driver (psycopg[binary] for postgresql+psycopg)",
        ) from None
    if backend == "sqlite":
        # SQLite waits up to half the budget for a lock, so with one retry on top a locked
        # file is reported after about ``retry_s`` seconds, not twice that.
        _configure_sqlite(engine, busy_timeout_ms=max(50, int(500 * retry_s)))
    return engine


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below); the driver's implicit BEGIN skips SELECT and DDL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys = ON")
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get("dmo_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# --------------------------------------------------------------------------- errors and retries


def is_transient(error: BaseException) -> bool:
    """Whether waiting and trying again can make ``error`` go away."""
    if isinstance(error, IntegrityError) or not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate in _PG_TRANSIENT_SQLSTATES:
        return True
    text = str(error.orig).lower()
    if any(marker in text for marker in _PERMANENT_TEXT):
        return False
    return any(marker in text for marker in _TRANSIENT_TEXT)


def store_error(error: BaseException, url: URL, *, doing: str) -> StoreError:
    """A user-facing error for a database failure, password masked."""
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    detail = lines[0] if lines else type(error).__name__
    text = detail.lower()
    missing_relation = "relation" in text and "does not exist" in text
    if "readonly database" in text or "read-only" in text:
        hint = "the database file or its directory is read-only; check permissions"
    elif "no such table" in text or missing_relation:
        hint = "the schema is missing or old; run `dmo db upgrade`"
    elif "database is locked" in text:
        hint = "another process holds a write lock; retry later or raise the retry budget"
    elif "does not exist" in text:
        hint = "create the database first (createdb) or fix the URL"
    elif "authentication failed" in text or "no password supplied" in text:
        hint = "check the user and password of the URL"
    elif is_transient(error):
        hint = "is the server running and reachable? (pg_isready)"
    else:
        hint = None
    return StoreError(scrub(f"{doing} failed: {detail}", url), where=mask_url(url), hint=hint)


def run_with_retry(
    action: Callable[[], T], *, url: URL, retry_s: float, doing: str
) -> T:
    """Run ``action``; retry transient failures with exponential backoff for ``retry_s`` seconds.

    ``IntegrityError`` passes through untouched: callers use it to detect that
    another writer won a race. Any other database failure becomes a StoreError.
    """
    deadline = time.monotonic() + retry_s
    delay = 0.05
    attempt = 0
    while True:
        attempt += 1
        try:
            return action()
        except IntegrityError:
            raise
        except DBAPIError as error:
            remaining = deadline - time.monotonic()
            if not is_transient(error) or remaining <= 0:
                raise store_error(error, url, doing=doing) from None
            pause = min(delay * (1 + random.random()), remaining, 2.0)
            log.warning(
                "%s on %s failed (attempt %d, retrying in %.2fs): %s",
                doing, mask_url(url), attempt, pause, scrub(str(error.orig), url),
            )
            time.sleep(pause)
            delay *= 2


# --------------------------------------------------------------------------- migrations


def alembic_config(url: URL | str, connection: sa.Connection | None = None) -> Any:
    """Alembic configuration built in code (no alembic.ini): our scripts and version table."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    config.set_main_option("sqlalchemy.url", text.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "storage/migrations has no revisions"
    return head


def current_revision(connection: sa.Connection) -> str | None:
    """Our schema revision, read without Alembic (commands that only read start faster)."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade_schema(engine: Engine) -> None:
    """``alembic upgrade head`` in one transaction, serialised across processes."""
    from alembic import command
    from alembic.util import CommandError

    logging.getLogger("alembic").setLevel(logging.WARNING)
    with engine.execution_options(dmo_write=True).begin() as connection:
        if engine.dialect.name == "postgresql":
            lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
            connection.execute(lock, {"key": _PG_MIGRATION_LOCK})
        try:
            command.upgrade(alembic_config(engine.url, connection), "head")
        except CommandError as error:
            raise StoreError(
                f"cannot upgrade the schema: {error}",
                where=mask_url(engine.url),
                hint="the database may have been created by a newer dmo; upgrade dmo",
            ) from None


# --------------------------------------------------------------------------- one database


class Database:
    """A URL's engines, retry budget and schema version; knows nothing of dmo's tables.

    Nothing connects until the first call; every call is retried on transient
    failures for ``retry_s`` seconds and fails with a masked StoreError.
    """

    def __init__(self, url: str | URL, *, retry_s: float = DEFAULT_RETRY_S, create: bool = True):
        self.url = parse_url(url) if isinstance(url, str) else url
        self.retry_s = retry_s
        self.engine = create_store_engine(self.url, retry_s=retry_s, create=create)
        self._write_engine = self.engine.execution_options(dmo_write=True)

    @property
    def url_text(self) -> str:
        return self.url.render_as_string(hide_password=False)

    @property
    def url_masked(self) -> str:
        return mask_url(self.url)

    @property
    def backend(self) -> str:
        return self.url.get_backend_name()

    def dispose(self) -> None:
        self.engine.dispose()

    def retry(self, action: Callable[[], T], doing: str) -> T:
        return run_with_retry(action, url=self.url, retry_s=self.retry_s, doing=doing)

    def ping(self) -> None:
        def attempt() -> None:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))

        self.retry(attempt, "connecting")

    def upgrade(self) -> None:
        self.retry(lambda: upgrade_schema(self.engine), "upgrading the schema")

    def revision(self) -> str | None:
        def attempt() -> str | None:
            with self.engine.connect() as connection:
                return current_revision(connection)

        return self.retry(attempt, "reading the schema revision")

    def transaction(self, work: Callable[[Session], T], *, write: bool, doing: str) -> T:
        """Run ``work`` in one session transaction, the whole of it retried when transient."""
        engine = self._write_engine if write else self.engine

        def attempt() -> T:
            with Session(engine, expire_on_commit=False) as session, session.begin():
                return work(session)

        return self.retry(attempt, doing)

    def write_racing(self, work: Callable[[Session], T], *, doing: str) -> T:
        """A write whose unique key another process may insert first: on IntegrityError,
        run ``work`` again, and it finds the other process's row."""
        for attempt in range(_RACE_ATTEMPTS):
            try:
                return self.transaction(work, write=True, doing=doing)
            except IntegrityError as error:
                if attempt == _RACE_ATTEMPTS - 1:
                    raise store_error(error, self.url, doing=doing) from None
        raise AssertionError("unreachable")
