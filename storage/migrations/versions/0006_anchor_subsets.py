"""Subset scoring: a search's anchor subset, and its best trials rescored on the full benchmarks.

``dmo_searches.anchors`` holds benchmark -> ascending sample indices (dmo.search.anchors), chosen
once when the search first runs; NULL for a search that scores every sample. ``dmo_trials``
gains ``full_value`` and ``full_scores``: the first objective and the per-benchmark points of a
trial rescored on every sample when its search ended, NULL for a trial that was not.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE, not batch mode (see 0005: batch mode's drop would cascade).
def upgrade() -> None:
    op.add_column("dmo_searches", sa.Column("anchors", sa.JSON(), nullable=True))
    op.add_column("dmo_trials", sa.Column("full_value", sa.Double(), nullable=True))
    op.add_column("dmo_trials", sa.Column("full_scores", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("dmo_trials", "full_scores")
    op.drop_column("dmo_trials", "full_value")
    op.drop_column("dmo_searches", "anchors")
