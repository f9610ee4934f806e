"""Training claims: who trains a model now, and when it last said it was alive.

Two searches started at once on one store both trained the same base into the
same folder. A trainer now claims the model row (``claim_token``) and beats
``heartbeat_at`` while it trains; another caller waits for it, and takes the
claim over only when the heartbeat has gone stale.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dmo_models") as batch:
        batch.add_column(sa.Column("claim_token", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dmo_models") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("claim_token")
