"""Alembic environment of the dmo store.

Run through :func:`storage.db.upgrade_schema`, which hands us a connection
already inside a transaction (and holding the migration lock); with no
connection (a developer's ``command.revision``) an engine is made from the URL.
Our history lives in ``dmo_alembic_version`` and autogenerate looks only at
our ``dmo_*`` tables, so Optuna's tables and its ``alembic_version`` in the
same database are never touched.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from storage.db import VERSION_TABLE, create_store_engine, parse_url
from storage.models import Base, UtcDateTime

config = context.config
target_metadata = Base.metadata


def _ours(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "table":
        return name is not None and name.startswith("dmo_") and name != VERSION_TABLE
    return True


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migrations spell the column type, not our decorator, so they never import storage.models.
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_name=_ours,
        compare_type=True,
        render_item=_render_item,
        render_as_batch=True,  # SQLite ALTERs go through table copies
        **kwargs,
    )


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_store_engine(parse_url(config.get_main_option("sqlalchemy.url")))
    try:
        with engine.execution_options(dmo_write=True).begin() as connection:
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
