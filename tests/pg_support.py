"""A fresh PostgreSQL database per test or module, shared by every suite that needs one.

PostgreSQL comes from $DMO_TEST_PG_URL (default: the local trust-auth server). When it
cannot be reached the caller's test skips, unless $DMO_REQUIRE_POSTGRES=1 (CI) makes it fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("DMO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("DMO_REQUIRE_POSTGRES") == "1"


def admin_engine() -> sa.Engine:
    return sa.create_engine(make_url(PG_URL), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """Create `<prefix>_<random>`, yield its URL (password kept), drop it afterwards."""
    admin = admin_engine()
    try:
        with admin.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means "no server here"
        admin.dispose()
        reason = f"PostgreSQL at {make_url(PG_URL).render_as_string()} unreachable: {type(error).__name__}"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{reason} (DMO_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
