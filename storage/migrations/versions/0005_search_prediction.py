"""A search's predicted optimum: the surrogate's argmax, computed when the search ends.

``prediction`` holds dmo.search.surrogate.Prediction as JSON (model, weights, predicted
value, trials used, in-sample R², best evaluated value), or NULL where none was fitted
(multi-objective, too few trials, or a search finished before this revision).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, not batch mode: SQLite's batch mode copies the table and drops the old one,
# and the drop would cascade to the validations and recipes that reference the searches.
def upgrade() -> None:
    op.add_column("dmo_searches", sa.Column("prediction", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("dmo_searches", "prediction")
