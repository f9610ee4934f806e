"""Typed search snapshots; drop the unused datasets table.

A search stored its config as a hand-patched dict (``trials``, ``seed`` and
``base_id`` beside the config keys) plus an ``objective`` dict that repeated
part of it. Both become one versioned snapshot,
``{"version": 2, "config": <DmoConfig>, "base_id": <int | null>}``, which
dmo parses back into ``dmo.config.snapshot.SearchSnapshot``.

This migration works on plain JSON (it must not import today's pydantic
models, which a later version may change).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PATCHED_KEYS = ("trials", "seed", "base_id")


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def snapshot_from_v1(config: dict[str, Any]) -> dict[str, Any]:
    """The v2 snapshot of a search stored by revision 0001."""
    body = {key: value for key, value in config.items() if key not in _PATCHED_KEYS}
    search = dict(body.get("search") or {})
    if "trials" in config:
        search["trials"] = config["trials"]
    if "seed" in config:
        search["seed"] = config["seed"]
    if search:
        body["search"] = search
    base_id = config.get("base_id")
    return {"version": 2, "config": body, "base_id": None if base_id is None else int(base_id)}


def v1_from_snapshot(snapshot: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, objective) columns of revision 0001 for a v2 snapshot."""
    body = dict(snapshot.get("config") or {})
    search = body.get("search") or {}
    config = {**body, "trials": search.get("trials"), "seed": search.get("seed"),
              "base_id": snapshot.get("base_id")}
    objective = {**(search.get("objective") or {"kind": "mean"}),
                 "metric": (body.get("evaluation") or {}).get("score", "exact_match")}
    return config, objective


def upgrade() -> None:
    op.drop_table("dmo_datasets")
    with op.batch_alter_table("dmo_searches") as batch:
        batch.add_column(sa.Column("snapshot", sa.JSON(), nullable=True))
    connection = op.get_bind()
    searches = sa.table("dmo_searches", sa.column("id", sa.Integer()), sa.column("config", sa.JSON()),
                        sa.column("snapshot", sa.JSON()))
    for row_id, config in connection.execute(sa.select(searches.c.id, searches.c.config)).all():
        snapshot = snapshot_from_v1(_loads(config) or {})
        connection.execute(searches.update().where(searches.c.id == row_id).values(snapshot=snapshot))
    with op.batch_alter_table("dmo_searches") as batch:
        batch.alter_column("snapshot", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("config")
        batch.drop_column("objective")


def downgrade() -> None:
    with op.batch_alter_table("dmo_searches") as batch:
        batch.add_column(sa.Column("config", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("objective", sa.JSON(), nullable=True))
    connection = op.get_bind()
    searches = sa.table("dmo_searches", sa.column("id", sa.Integer()), sa.column("config", sa.JSON()),
                        sa.column("objective", sa.JSON()), sa.column("snapshot", sa.JSON()))
    for row_id, snapshot in connection.execute(sa.select(searches.c.id, searches.c.snapshot)).all():
        config, objective = v1_from_snapshot(_loads(snapshot) or {})
        connection.execute(
            searches.update().where(searches.c.id == row_id).values(config=config, objective=objective)
        )
    with op.batch_alter_table("dmo_searches") as batch:
        batch.alter_column("config", existing_type=sa.JSON(), nullable=False)
        batch.alter_column("objective", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("snapshot")
    op.create_table(
        "dmo_datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("source", sa.JSON(), nullable=False),
        sa.Column("sizes", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmo_datasets")),
        sa.UniqueConstraint("name", "content_hash", name=op.f("uq_dmo_datasets_name_content_hash")),
    )
