"""ORM tables of the store (SQLAlchemy 2, typed).

Every table is prefixed ``dmo_`` because Optuna's RDB tables (``studies``,
``trials``, ...) live in the same database. Schema changes go through
Alembic (storage/migrations); a test compares these classes with the
migrated schema, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from dmo.config.snapshot import SearchSnapshot
from dmo.errors import StoreError
from storage import records as rec

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC on both backends (SQLite stores no zone, so we add it back)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _one_of(column: str, allowed: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(a) for a in allowed)})"


def _search_fk() -> sa.ForeignKey:
    """Rows that belong to a search go with it."""
    return sa.ForeignKey("dmo_searches.id", ondelete="CASCADE")


def _trial_fk() -> sa.ForeignKey:
    """A validation result or recipe outlives the trial row it came from."""
    return sa.ForeignKey("dmo_trials.id", ondelete="SET NULL")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dict[str, Any]: sa.JSON,
        list[Any]: sa.JSON,
        datetime: UtcDateTime,
    }


class ModelRow(Base):
    """Base models, experts and mixture-trained models; ``config_hash`` is the cache key."""

    __tablename__ = "dmo_models"
    __table_args__ = (
        sa.CheckConstraint(_one_of("kind", rec.MODEL_KINDS), name="kind"),
        sa.CheckConstraint(_one_of("status", rec.MODEL_STATUSES), name="status"),
        sa.Index(None, "kind", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    config_hash: Mapped[str] = mapped_column(sa.String(128), unique=True)
    domain: Mapped[str | None] = mapped_column(sa.String(64))
    base_id: Mapped[int | None] = mapped_column(sa.ForeignKey("dmo_models.id"))
    status: Mapped[str] = mapped_column(sa.String(16))
    training: Mapped[dict[str, Any]]
    finetune: Mapped[str] = mapped_column(sa.String(16))
    efficiency: Mapped[dict[str, Any]]
    mod_schedule: Mapped[str | None] = mapped_column(sa.String(32))
    flops_ratio: Mapped[float | None]
    kv_ratio: Mapped[float | None]
    checkpoint_uri: Mapped[str | None] = mapped_column(sa.Text)
    checkpoint_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    metrics: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(default=1)
    claim_token: Mapped[str | None] = mapped_column(sa.String(64))  # who trains it now
    heartbeat_at: Mapped[datetime | None]  # when that trainer last said it was alive
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    duration_s: Mapped[float | None]

    def to_record(self) -> rec.ModelRecord:
        return rec.ModelRecord(
            id=self.id, kind=self.kind, config_hash=self.config_hash, domain=self.domain,
            base_id=self.base_id, status=self.status, training=dict(self.training),
            finetune=self.finetune, efficiency=dict(self.efficiency),
            mod_schedule=self.mod_schedule, flops_ratio=self.flops_ratio, kv_ratio=self.kv_ratio,
            checkpoint_uri=self.checkpoint_uri,
            checkpoint_sha256=self.checkpoint_sha256, metrics=dict(self.metrics), error=self.error,
            attempts=self.attempts, claim_token=self.claim_token, heartbeat_at=self.heartbeat_at,
            created_at=self.created_at, started_at=self.started_at,
            finished_at=self.finished_at, duration_s=self.duration_s,
        )


class SearchRow(Base):
    __tablename__ = "dmo_searches"
    __table_args__ = (sa.CheckConstraint(_one_of("status", rec.SEARCH_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    study_name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    snapshot: Mapped[dict[str, Any]]  # a SearchSnapshot as JSON: parsed on read
    sampler: Mapped[str] = mapped_column(sa.String(32))  # repeats snapshot.config.search.sampler
    domains: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(sa.String(16))
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    prediction: Mapped[dict[str, Any] | None]  # dmo.search.surrogate.Prediction, set when the search ends
    anchors: Mapped[dict[str, Any] | None]  # benchmark -> sample indices its trials are scored on (subset scoring)

    experts: Mapped[list[SearchExpertRow]] = relationship(
        order_by="SearchExpertRow.position", cascade="all, delete-orphan", lazy="selectin"
    )

    def to_record(self) -> rec.SearchRecord:
        return rec.SearchRecord(
            id=self.id, name=self.name, study_name=self.study_name,
            snapshot=_parse_snapshot(self.id, self.snapshot),
            sampler=self.sampler, domains=tuple(self.domains),
            expert_ids=tuple(e.model_id for e in self.experts), status=self.status,
            error=self.error, created_at=self.created_at, updated_at=self.updated_at,
            finished_at=self.finished_at, prediction=self.prediction,
            anchors=None if self.anchors is None else {b: tuple(i) for b, i in self.anchors.items()},
        )


def _parse_snapshot(search_id: int, payload: dict[str, Any]) -> SearchSnapshot:
    try:
        return SearchSnapshot.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise StoreError(
            f"the stored snapshot of search {search_id} does not parse: {field}: {first['msg']}",
            where="store",
            hint="a store written by another dmo version: run `dmo db upgrade` with this one",
        ) from None


class SearchExpertRow(Base):
    """Which experts a search merges, in the order of its task-vector bank."""

    __tablename__ = "dmo_search_experts"

    search_id: Mapped[int] = mapped_column(_search_fk(), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("dmo_models.id"))


class TrialRow(Base):
    """One proxy evaluation; ``objective_value`` repeats objective[0] so SQL can rank."""

    __tablename__ = "dmo_trials"
    __table_args__ = (
        sa.UniqueConstraint("search_id", "number"),
        sa.CheckConstraint(_one_of("state", rec.TRIAL_STATES), name="state"),
        sa.Index(None, "search_id", "state", "objective_value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    search_id: Mapped[int] = mapped_column(_search_fk())
    number: Mapped[int]
    state: Mapped[str] = mapped_column(sa.String(16))
    weights: Mapped[dict[str, Any]]
    merge_method: Mapped[str] = mapped_column(sa.String(64))
    params: Mapped[dict[str, Any]]
    scores: Mapped[dict[str, Any]]
    objective: Mapped[list[Any]]
    objective_value: Mapped[float | None]
    routing: Mapped[dict[str, Any] | None]
    efficiency: Mapped[dict[str, Any] | None]
    duration_s: Mapped[float | None]
    full_value: Mapped[float | None]  # the first objective on every sample, where the trial was rescored
    full_scores: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_record(self) -> rec.TrialRecord:
        return rec.TrialRecord(
            id=self.id, search_id=self.search_id, number=self.number, state=self.state,
            weights=dict(self.weights), merge_method=self.merge_method, params=dict(self.params),
            scores=dict(self.scores), objective=tuple(self.objective),
            routing=None if self.routing is None else dict(self.routing),
            efficiency=None if self.efficiency is None else dict(self.efficiency),
            duration_s=self.duration_s, created_at=self.created_at, updated_at=self.updated_at,
            full_value=self.full_value, full_scores=None if self.full_scores is None else dict(self.full_scores),
        )


class ValidationRow(Base):
    """Proxies checked against mixture-trained models; ``summary`` holds spearman/kendall/regret."""

    __tablename__ = "dmo_validations"
    __table_args__ = (
        sa.CheckConstraint(_one_of("status", rec.VALIDATION_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    search_id: Mapped[int] = mapped_column(_search_fk(), index=True)
    config: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(sa.String(16))
    summary: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    results: Mapped[list[MixtureResultRow]] = relationship(
        order_by="MixtureResultRow.id", cascade="all, delete-orphan", lazy="selectin"
    )

    def to_record(self) -> rec.ValidationRecord:
        return rec.ValidationRecord(
            id=self.id, search_id=self.search_id, config=dict(self.config), status=self.status,
            summary=dict(self.summary), error=self.error,
            results=tuple(r.to_record() for r in self.results),
            created_at=self.created_at, finished_at=self.finished_at,
        )


class MixtureResultRow(Base):
    """Unique per (validation, mixture, replicate): a resumed validation replaces, never duplicates."""

    __tablename__ = "dmo_mixture_results"
    __table_args__ = (sa.UniqueConstraint("validation_id", "mixture_key", "replicate"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    validation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("dmo_validations.id", ondelete="CASCADE")
    )
    mixture_key: Mapped[str] = mapped_column(sa.String(512))
    replicate: Mapped[int] = mapped_column(server_default="0")
    mixture_group: Mapped[str | None] = mapped_column(sa.String(16))
    weights: Mapped[dict[str, Any]]
    trial_id: Mapped[int | None] = mapped_column(_trial_fk())
    model_id: Mapped[int | None] = mapped_column(sa.ForeignKey("dmo_models.id"))
    proxy_scores: Mapped[dict[str, Any]]
    real_scores: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_record(self) -> rec.MixtureResultRecord:
        return rec.MixtureResultRecord(
            id=self.id, validation_id=self.validation_id, weights=dict(self.weights),
            trial_id=self.trial_id, model_id=self.model_id, proxy_scores=dict(self.proxy_scores),
            real_scores=dict(self.real_scores), created_at=self.created_at, replicate=self.replicate,
            group=self.mixture_group,
        )


class RecipeRow(Base):
    __tablename__ = "dmo_recipes"

    id: Mapped[int] = mapped_column(primary_key=True)
    search_id: Mapped[int] = mapped_column(_search_fk(), index=True)
    trial_id: Mapped[int | None] = mapped_column(_trial_fk())
    format: Mapped[str] = mapped_column(sa.String(32))
    path: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    budget: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_record(self) -> rec.RecipeRecord:
        return rec.RecipeRecord(
            id=self.id, search_id=self.search_id, trial_id=self.trial_id, format=self.format,
            path=self.path, sha256=self.sha256, budget=self.budget, created_at=self.created_at,
        )
