"""The store's API: the only door to the database for the rest of dmo.

Every method is one transaction (retried as a whole on transient failures)
and returns frozen records from :mod:`storage.records`, never ORM objects.
Writes that can race (two workers recording the same trial, two experts with
the same config hash) resolve through unique constraints: the loser reads the
winner's row instead of writing a second one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePath
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dmo.errors import SearchError, StoreError
from storage import db
from storage import records as rec
from storage.records import mixture_key, mixture_weights, one_of, plain_json
from storage.models import (
    DatasetRow,
    MixtureResultRow,
    ModelRow,
    RecipeRow,
    SearchExpertRow,
    SearchRow,
    TrialRow,
    ValidationRow,
    utcnow,
)

log = logging.getLogger("dmo.storage")
T = TypeVar("T")
DIRECTIONS = ("maximize", "minimize")
_CLOSED_SEARCH = ("finished", "failed", "interrupted")


def _efficiency_columns(efficiency: dict[str, Any]) -> dict[str, Any]:
    """The efficiency JSON plus the keys repeated as columns for sorting and filtering."""
    schedule = efficiency.get("schedule", efficiency.get("mod_schedule"))
    flops, kv = efficiency.get("flops_ratio"), efficiency.get("kv_ratio")
    return {
        "efficiency": efficiency,
        "mod_schedule": None if schedule is None else str(schedule),
        "flops_ratio": None if flops is None else float(flops),
        "kv_ratio": None if kv is None else float(kv),
    }


def _reopen(url: str, retry_s: float) -> Store:
    return Store.open(url, upgrade=False, retry_s=retry_s)


# --------------------------------------------------------------------------- the store


class Store:
    """dmo's tables in one database; open with :meth:`Store.open`.

    Safe to share between threads; pickling it (e.g. into a Ray task) reopens
    the same URL in the receiving process without migrating.
    """

    def __init__(self, database: db.Database):
        self._db = database

    @classmethod
    def open(
        cls, url: str, *, upgrade: bool = True, retry_s: float = db.DEFAULT_RETRY_S
    ) -> Store:
        """Connect (retrying transient failures for ``retry_s`` seconds) and, by default,
        migrate our tables to the newest revision."""
        database = db.Database(url, retry_s=retry_s)
        try:
            if upgrade:
                database.upgrade()
            else:
                database.ping()
        except BaseException:
            database.dispose()
            raise
        return cls(database)

    @property
    def url(self) -> str:
        """The real URL, password included: hand it to Optuna's RDBStorage, never print it."""
        return self._db.url_text

    @property
    def url_masked(self) -> str:
        return self._db.url_masked

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.backend

    def __repr__(self) -> str:
        return f"Store({self.url_masked!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (self.url, self._db.retry_s))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def dispose(self) -> None:
        self._db.dispose()

    def upgrade(self) -> None:
        """``alembic upgrade head`` on our version table; a no-op when already there."""
        self._db.upgrade()

    def revision(self) -> str | None:
        """Our schema revision (``dmo_alembic_version``); None before the first upgrade."""
        return self._db.revision()

    # ----------------------------------------------------------------------- transactions

    def _run(self, work: Callable[[Session], T], *, write: bool, doing: str) -> T:
        return self._db.transaction(work, write=write, doing=doing)

    def _read(self, work: Callable[[Session], T], doing: str) -> T:
        return self._db.transaction(work, write=False, doing=doing)

    def _write_racing(self, work: Callable[[Session], T], *, doing: str) -> T:
        return self._db.write_racing(work, doing=doing)

    @staticmethod
    def _get(session: Session, row_type: type[Any], row_id: int, what: str) -> Any:
        row = session.get(row_type, row_id)
        if row is None:
            if row_type is SearchRow:
                raise SearchError(f"no search with id {row_id}", where="store",
                                  hint="list them with `dmo searches`")
            raise StoreError(f"no {what} with id {row_id}", where="store")
        return row

    # ----------------------------------------------------------------------- datasets

    def upsert_dataset(
        self, name: str, source: Mapping[str, Any], sizes: Mapping[str, Any], content_hash: str
    ) -> rec.DatasetRecord:
        """The row for this (name, content hash), created the first time it is seen."""

        def work(session: Session) -> rec.DatasetRecord:
            query = sa.select(DatasetRow).filter_by(name=name, content_hash=content_hash)
            row = session.scalars(query).first()
            if row is None:
                row = DatasetRow(name=name, source=plain_json(source), sizes=plain_json(sizes),
                                 content_hash=content_hash)
                session.add(row)
                session.flush()
            return row.to_record()

        return self._write_racing(work, doing="recording a dataset")

    def list_datasets(self) -> list[rec.DatasetRecord]:
        query = sa.select(DatasetRow).order_by(DatasetRow.id)
        return self._read(lambda s: [r.to_record() for r in s.scalars(query)], "listing datasets")

    # ----------------------------------------------------------------------- models

    def find_model(self, config_hash: str) -> rec.ModelRecord | None:
        """The finished model trained from this config, if any: the training cache."""
        query = sa.select(ModelRow).filter_by(config_hash=config_hash, status="finished")

        def work(session: Session) -> rec.ModelRecord | None:
            row = session.scalars(query).first()
            return None if row is None else row.to_record()

        return self._read(work, "looking up a model")

    def get_model(self, model_id: int) -> rec.ModelRecord:
        return self._read(
            lambda s: self._get(s, ModelRow, model_id, "model").to_record(), "reading a model"
        )

    def start_model(
        self, *, kind: str, config_hash: str, domain: str | None, base_id: int | None,
        training: Mapping[str, Any], finetune: str, efficiency: Mapping[str, Any]
    ) -> rec.ModelRecord:
        """Mark a training run as running.

        A running or finished row with this hash is returned as is (a retry, or a
        race lost to another worker; check ``status``); a failed one restarts as a
        new attempt with the new settings.
        """
        one_of(kind, rec.MODEL_KINDS, "model kind")
        fields = {
            "training": plain_json(training),
            "finetune": finetune,
            **_efficiency_columns(plain_json(efficiency)),
        }

        def work(session: Session) -> rec.ModelRecord:
            row = session.scalars(sa.select(ModelRow).filter_by(config_hash=config_hash)).first()
            if row is None:
                if base_id is not None:
                    self._get(session, ModelRow, base_id, "model")
                row = ModelRow(kind=kind, config_hash=config_hash, domain=domain, base_id=base_id,
                               status="running", metrics={}, **fields)
                session.add(row)
            elif row.status == "failed":
                for key, value in fields.items():
                    setattr(row, key, value)
                row.status, row.error, row.attempts = "running", None, row.attempts + 1
                row.started_at, row.finished_at, row.duration_s = utcnow(), None, None
            session.flush()
            return row.to_record()

        return self._write_racing(work, doing="starting a model")

    def finish_model(
        self, model_id: int, *, checkpoint_uri: str | PurePath, checkpoint_sha256: str,
        metrics: Mapping[str, Any], duration_s: float, efficiency: Mapping[str, Any] | None = None
    ) -> rec.ModelRecord:
        """Record the checkpoint; ``efficiency`` (e.g. measured FLOPs and KV ratios) is
        merged into the settings given at start."""

        def work(session: Session) -> rec.ModelRecord:
            row = self._get(session, ModelRow, model_id, "model")
            if efficiency:
                merged = {**row.efficiency, **plain_json(efficiency)}
                for key, value in _efficiency_columns(merged).items():
                    setattr(row, key, value)
            row.status, row.error = "finished", None
            row.checkpoint_uri, row.checkpoint_sha256 = str(checkpoint_uri), checkpoint_sha256
            row.metrics, row.finished_at = plain_json(metrics), utcnow()
            row.duration_s = float(duration_s)
            session.flush()
            return row.to_record()

        return self._run(work, write=True, doing="finishing a model")

    def fail_model(self, model_id: int, error: str) -> None:
        def work(session: Session) -> None:
            row = self._get(session, ModelRow, model_id, "model")
            if row.status == "finished":
                log.warning("model %d is finished; ignoring a late failure: %s", model_id, error)
                return
            row.status, row.error, row.finished_at = "failed", error, utcnow()

        self._run(work, write=True, doing="failing a model")

    def list_models(
        self, kind: str | None = None, status: str | None = None
    ) -> list[rec.ModelRecord]:
        query = sa.select(ModelRow).order_by(ModelRow.id)
        if kind is not None:
            query = query.filter_by(kind=one_of(kind, rec.MODEL_KINDS, "model kind"))
        if status is not None:
            query = query.filter_by(status=one_of(status, rec.MODEL_STATUSES, "model status"))
        return self._read(lambda s: [r.to_record() for r in s.scalars(query)], "listing models")

    # ----------------------------------------------------------------------- searches

    def create_search(
        self, *, name: str, config: Mapping[str, Any], sampler: str, objective: Mapping[str, Any],
        study_name: str, domains: Sequence[str], expert_ids: Sequence[int]
    ) -> rec.SearchRecord:
        """A new search; its Optuna study name must be new (resume with :meth:`find_search`)."""

        def work(session: Session) -> rec.SearchRecord:
            taken = session.scalars(sa.select(SearchRow.id).filter_by(study_name=study_name))
            existing = taken.first()
            if existing is not None:
                raise SearchError(
                    f"study '{study_name}' already belongs to search {existing}",
                    where="search", hint="resume that search or choose another name",
                )
            for model_id in expert_ids:
                self._get(session, ModelRow, model_id, "model")
            row = SearchRow(
                name=name, study_name=study_name, config=plain_json(config), sampler=sampler,
                objective=plain_json(objective), domains=list(domains), status="created",
                experts=[SearchExpertRow(position=i, model_id=m) for i, m in enumerate(expert_ids)],
            )
            session.add(row)
            session.flush()
            return row.to_record()

        try:
            return self._run(work, write=True, doing="creating a search")
        except IntegrityError:  # another process took the study name between our check and insert
            raise SearchError(f"study '{study_name}' was just created by another process",
                              where="search", hint="resume it instead") from None

    def get_search(self, search_id: int) -> rec.SearchRecord:
        return self._read(
            lambda s: self._get(s, SearchRow, search_id, "search").to_record(), "reading a search"
        )

    def find_search(self, study_name: str) -> rec.SearchRecord | None:
        """The search of an Optuna study, for resuming it."""
        query = sa.select(SearchRow).filter_by(study_name=study_name)

        def work(session: Session) -> rec.SearchRecord | None:
            row = session.scalars(query).first()
            return None if row is None else row.to_record()

        return self._read(work, "looking up a search")

    def list_searches(self) -> list[rec.SearchRecord]:
        query = sa.select(SearchRow).order_by(SearchRow.id)
        return self._read(lambda s: [r.to_record() for r in s.scalars(query)], "listing searches")

    def set_search_status(self, search_id: int, status: str, *, error: str | None = None) -> None:
        one_of(status, rec.SEARCH_STATUSES, "search status")

        def work(session: Session) -> None:
            row = self._get(session, SearchRow, search_id, "search")
            now = utcnow()
            row.status, row.error, row.updated_at = status, error, now
            row.finished_at = now if status in _CLOSED_SEARCH else None

        self._run(work, write=True, doing="updating a search")

    # ----------------------------------------------------------------------- trials

    def record_trial(
        self, *, search_id: int, number: int, weights: Mapping[str, float], merge_method: str,
        params: Mapping[str, Any], scores: Mapping[str, float | None],
        objective: Sequence[float | None], state: str, duration_s: float | None,
        routing: Mapping[str, Any] | None = None, efficiency: Mapping[str, Any] | None = None
    ) -> rec.TrialRecord:
        """Store trial ``number`` of a search, idempotently, and return the stored row.

        Recording the same trial again changes nothing. A row that is not complete
        (running, pruned, fail) is replaced by the new result; a complete one is
        kept (first result wins; a differing rewrite is logged), so a resumed
        search never duplicates or silently rewrites a finished trial.
        """
        one_of(state, rec.TRIAL_STATES, "trial state")
        values = plain_json(list(objective))
        fields = {
            "state": state, "weights": mixture_weights(weights), "merge_method": merge_method,
            "params": plain_json(params), "scores": plain_json(scores), "objective": values,
            "objective_value": values[0] if values else None,
            "routing": plain_json(routing), "efficiency": plain_json(efficiency),
            "duration_s": None if duration_s is None else float(duration_s),
        }

        def work(session: Session) -> rec.TrialRecord:
            self._get(session, SearchRow, search_id, "search")
            query = sa.select(TrialRow).filter_by(search_id=search_id, number=number)
            row = session.scalars(query).first()
            if row is None:
                row = TrialRow(search_id=search_id, number=number, **fields)
                session.add(row)
            elif any(getattr(row, k) != v for k, v in fields.items()):
                if row.state == "complete":
                    log.warning("trial %d of search %d is complete; keeping its stored result",
                                number, search_id)
                else:
                    for key, value in fields.items():
                        setattr(row, key, value)
                    row.updated_at = utcnow()
            session.flush()
            return row.to_record()

        return self._write_racing(work, doing="recording a trial")

    def trials(self, search_id: int, state: str | None = "complete") -> list[rec.TrialRecord]:
        """Trials of a search by number; ``state=None`` for all states."""
        query = sa.select(TrialRow).filter_by(search_id=search_id).order_by(TrialRow.number)
        if state is not None:
            query = query.filter_by(state=one_of(state, rec.TRIAL_STATES, "trial state"))
        return self._read(lambda s: [r.to_record() for r in s.scalars(query)], "reading trials")

    def trial_counts(self, search_id: int) -> dict[str, int]:
        """Number of trials per state, e.g. ``{"complete": 38, "fail": 2}``."""
        query = (
            sa.select(TrialRow.state, sa.func.count())
            .filter_by(search_id=search_id)
            .group_by(TrialRow.state)
        )
        return self._read(lambda s: {st: int(n) for st, n in s.execute(query)}, "counting trials")

    def best_trials(
        self, search_id: int, top_k: int = 5, direction: str | None = None
    ) -> list[rec.TrialRecord]:
        """The ``top_k`` complete trials by their first objective, ties by trial number;
        ``direction`` defaults to the search's (:attr:`SearchRecord.direction`)."""

        def work(session: Session) -> list[rec.TrialRecord]:
            search = self._get(session, SearchRow, search_id, "search").to_record()
            order = one_of(direction or search.direction, DIRECTIONS, "direction")
            value = TrialRow.objective_value
            query = (
                sa.select(TrialRow)
                .filter_by(search_id=search_id, state="complete")
                .where(value.is_not(None))
                .order_by(value.desc() if order == "maximize" else value.asc(), TrialRow.number)
                .limit(top_k)
            )
            return [r.to_record() for r in session.scalars(query)]

        return self._read(work, "ranking trials")

    # ----------------------------------------------------------------------- validation

    def create_validation(
        self, search_id: int, *, config: Mapping[str, Any]
    ) -> rec.ValidationRecord:
        def work(session: Session) -> rec.ValidationRecord:
            self._get(session, SearchRow, search_id, "search")
            row = ValidationRow(search_id=search_id, config=plain_json(config), status="running",
                                summary={}, results=[])
            session.add(row)
            session.flush()
            return row.to_record()

        return self._run(work, write=True, doing="creating a validation")

    def record_mixture_result(
        self, validation_id: int, *, weights: Mapping[str, float], trial_id: int | None,
        model_id: int | None, proxy_scores: Mapping[str, float | None],
        real_scores: Mapping[str, float | None]
    ) -> rec.MixtureResultRecord:
        """One mixture's proxy and real scores; the same mixture again replaces its result."""
        plain = mixture_weights(weights)
        key = mixture_key(plain)
        fields = {
            "weights": plain, "trial_id": trial_id, "model_id": model_id,
            "proxy_scores": plain_json(proxy_scores), "real_scores": plain_json(real_scores),
        }

        def work(session: Session) -> rec.MixtureResultRecord:
            self._get(session, ValidationRow, validation_id, "validation")
            query = sa.select(MixtureResultRow).filter_by(validation_id=validation_id,
                                                          mixture_key=key)
            row = session.scalars(query).first()
            if row is None:
                row = MixtureResultRow(validation_id=validation_id, mixture_key=key, **fields)
                session.add(row)
            else:
                for name, value in fields.items():
                    setattr(row, name, value)
            session.flush()
            return row.to_record()

        return self._write_racing(work, doing="recording a mixture result")

    def finish_validation(
        self, validation_id: int, *, summary: Mapping[str, Any]
    ) -> rec.ValidationRecord:
        """Close a validation with its fidelity summary (spearman, kendall, regret, ...)."""
        return self._close_validation(validation_id, "finished", plain_json(summary), None)

    def fail_validation(self, validation_id: int, error: str) -> rec.ValidationRecord:
        return self._close_validation(validation_id, "failed", None, error)

    def _close_validation(
        self, validation_id: int, status: str, summary: dict[str, Any] | None, error: str | None
    ) -> rec.ValidationRecord:
        def work(session: Session) -> rec.ValidationRecord:
            row = self._get(session, ValidationRow, validation_id, "validation")
            row.status, row.error, row.finished_at = status, error, utcnow()
            if summary is not None:
                row.summary = summary
            session.flush()
            return row.to_record()

        return self._run(work, write=True, doing="closing a validation")

    def latest_validation(
        self, search_id: int, *, finished_only: bool = False
    ) -> rec.ValidationRecord | None:
        """The search's newest validation with its mixture results, or None."""
        query = sa.select(ValidationRow).filter_by(search_id=search_id)
        if finished_only:
            query = query.filter_by(status="finished")
        query = query.order_by(ValidationRow.id.desc()).limit(1)

        def work(session: Session) -> rec.ValidationRecord | None:
            row = session.scalars(query).first()
            return None if row is None else row.to_record()

        return self._read(work, "reading validations")

    # ----------------------------------------------------------------------- recipes

    def record_recipe(
        self, *, search_id: int, trial_id: int | None, fmt: str, path: str | PurePath, sha256: str,
        budget: int | None
    ) -> rec.RecipeRecord:
        def work(session: Session) -> rec.RecipeRecord:
            self._get(session, SearchRow, search_id, "search")
            row = RecipeRow(search_id=search_id, trial_id=trial_id, format=fmt, path=str(path),
                            sha256=sha256, budget=budget)
            session.add(row)
            session.flush()
            return row.to_record()

        return self._run(work, write=True, doing="recording a recipe")

    def list_recipes(self, search_id: int | None = None) -> list[rec.RecipeRecord]:
        query = sa.select(RecipeRow).order_by(RecipeRow.id)
        if search_id is not None:
            query = query.filter_by(search_id=search_id)
        return self._read(lambda s: [r.to_record() for r in s.scalars(query)], "listing recipes")
