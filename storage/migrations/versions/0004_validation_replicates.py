"""Validation results per replicate, with the set each mixture was drawn in.

Test–retest needs two models of one mixture trained on two seeds, so a
result row is now unique per (validation, mixture, replicate); ``mixture_group``
says which set a mixture came from (held-out ``draw``, the search's ``pick``,
or the reference protocol's ``pairs``, ``triples`` and ``simplex``). Rows
written before are replicate 0 of an unnamed group.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_UNIQUE = "uq_dmo_mixture_results_validation_id_mixture_key"
NEW_UNIQUE = "uq_dmo_mixture_results_validation_id_mixture_key_replicate"


def upgrade() -> None:
    with op.batch_alter_table("dmo_mixture_results") as batch:
        batch.add_column(sa.Column("replicate", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("mixture_group", sa.String(length=16), nullable=True))
        batch.drop_constraint(OLD_UNIQUE, type_="unique")
        batch.create_unique_constraint(NEW_UNIQUE, ["validation_id", "mixture_key", "replicate"])


def downgrade() -> None:
    with op.batch_alter_table("dmo_mixture_results") as batch:
        batch.drop_constraint(NEW_UNIQUE, type_="unique")
        batch.execute(sa.text("DELETE FROM dmo_mixture_results WHERE replicate > 0"))
        batch.create_unique_constraint(OLD_UNIQUE, ["validation_id", "mixture_key"])
        batch.drop_column("mixture_group")
        batch.drop_column("replicate")
