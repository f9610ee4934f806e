"""Initial schema: datasets, models, searches, trials, validations, recipes.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.JSON(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "dmo_datasets",
        _id(),
        sa.Column("name", sa.String(length=64), nullable=False),
        _json("source"),
        _json("sizes"),
        sa.Column("content_hash", sa.String(length=128), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmo_datasets")),
        sa.UniqueConstraint("name", "content_hash", name=op.f("uq_dmo_datasets_name_content_hash")),
    )
    op.create_table(
        "dmo_models",
        _id(),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("config_hash", sa.String(length=128), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=True),
        sa.Column("base_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        _json("training"),
        sa.Column("finetune", sa.String(length=16), nullable=False),
        _json("efficiency"),
        sa.Column("mod_schedule", sa.String(length=32), nullable=True),
        sa.Column("flops_ratio", sa.Double(), nullable=True),
        sa.Column("kv_ratio", sa.Double(), nullable=True),
        sa.Column("checkpoint_uri", sa.Text(), nullable=True),
        sa.Column("checkpoint_sha256", sa.String(length=64), nullable=True),
        _json("metrics"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        _timestamp("started_at"),
        _timestamp("finished_at", nullable=True),
        sa.Column("duration_s", sa.Double(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('base', 'expert', 'mixture')", name=op.f("ck_dmo_models_kind")
        ),
        sa.CheckConstraint(
            "status IN ('running', 'finished', 'failed')", name=op.f("ck_dmo_models_status")
        ),
        sa.ForeignKeyConstraint(
            ["base_id"], ["dmo_models.id"], name=op.f("fk_dmo_models_base_id_dmo_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmo_models")),
        sa.UniqueConstraint("config_hash", name=op.f("uq_dmo_models_config_hash")),
    )
    op.create_index(op.f("ix_dmo_models_kind_status"), "dmo_models", ["kind", "status"])

    op.create_table(
        "dmo_searches",
        _id(),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("study_name", sa.String(length=255), nullable=False),
        _json("config"),
        sa.Column("sampler", sa.String(length=32), nullable=False),
        _json("objective"),
        _json("domains"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("finished_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('created', 'running', 'finished', 'failed', 'interrupted')",
            name=op.f("ck_dmo_searches_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmo_searches")),
        sa.UniqueConstraint("study_name", name=op.f("uq_dmo_searches_study_name")),
    )
    op.create_table(
        "dmo_search_experts",
        sa.Column("search_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["dmo_models.id"], name=op.f("fk_dmo_search_experts_model_id_dmo_models")
        ),
        sa.ForeignKeyConstraint(
            ["search_id"],
            ["dmo_searches.id"],
            name=op.f("fk_dmo_search_experts_search_id_dmo_searches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("search_id", "position", name=op.f("pk_dmo_search_experts")),
    )
    op.create_table(
        "dmo_trials",
        _id(),
        sa.Column("search_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        _json("weights"),
        sa.Column("merge_method", sa.String(length=64), nullable=False),
        _json("params"),
        _json("scores"),
        _json("objective"),
        sa.Column("objective_value", sa.Double(), nullable=True),
        _json("routing", nullable=True),
        _json("efficiency", nullable=True),
        sa.Column("duration_s", sa.Double(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "state IN ('running', 'complete', 'pruned', 'fail')", name=op.f("ck_dmo_trials_state")
        ),
        sa.ForeignKeyConstraint(
            ["search_id"],
            ["dmo_searches.id"],
            name=op.f("fk_dmo_trials_search_id_dmo_searches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmo_trials")),
        sa.UniqueConstraint("search_id", "number", name=op.f("uq_dmo_trials_search_id_number")),
    )
    op.create_index(
        op.f("ix_dmo_trials_search_id_state_objective_value"),
        "dmo_trials",
        ["search_id", "state", "objective_value"],
    )

    op.create_table(
        "dmo_validations",
        _id(),
        sa.Column("search_id", sa.Integer(), nullable=False),
        _json("config"),
        sa.Column("status", sa.String(length=16), nullable=False),
        _json("summary"),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("created_at"),
        _timestamp("finished_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'finished', 'failed')", name=op.f("ck_dmo_validations_status")
        ),
        sa.ForeignKeyConstraint(
            ["search_id"],
            ["dmo_searches.id"],
            name=op.f("fk_dmo_validations_search_id_dmo_searches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmo_validations")),
    )
    op.create_index(op.f("ix_dmo_validations_search_id"), "dmo_validations", ["search_id"])

    op.create_table(
        "dmo_mixture_results",
        _id(),
        sa.Column("validation_id", sa.Integer(), nullable=False),
        sa.Column("mixture_key", sa.String(length=512), nullable=False),
        _json("weights"),
        sa.Column("trial_id", sa.Integer(), nullable=True),
        sa.Column("model_id", sa.Integer(), nullable=True),
        _json("proxy_scores"),
        _json("real_scores"),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["dmo_models.id"], name=op.f("fk_dmo_mixture_results_model_id_dmo_models")
        ),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["dmo_trials.id"],
            name=op.f("fk_dmo_mixture_results_trial_id_dmo_trials"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["validation_id"],
            ["dmo_validations.id"],
            name=op.f("fk_dmo_mixture_results_validation_id_dmo_validations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmo_mixture_results")),
        sa.UniqueConstraint(
            "validation_id",
            "mixture_key",
            name=op.f("uq_dmo_mixture_results_validation_id_mixture_key"),
        ),
    )
    op.create_table(
        "dmo_recipes",
        _id(),
        sa.Column("search_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("budget", sa.Integer(), nullable=True),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["search_id"],
            ["dmo_searches.id"],
            name=op.f("fk_dmo_recipes_search_id_dmo_searches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["dmo_trials.id"],
            name=op.f("fk_dmo_recipes_trial_id_dmo_trials"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dmo_recipes")),
    )
    op.create_index(op.f("ix_dmo_recipes_search_id"), "dmo_recipes", ["search_id"])


def downgrade() -> None:
    op.drop_table("dmo_recipes")
    op.drop_table("dmo_mixture_results")
    op.drop_table("dmo_validations")
    op.drop_table("dmo_trials")
    op.drop_table("dmo_search_experts")
    op.drop_table("dmo_searches")
    op.drop_table("dmo_models")
    op.drop_table("dmo_datasets")
