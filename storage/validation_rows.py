"""Validations (proxies against mixture-trained models) and exported recipes in the store."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dmo.mixture import Mixture
from storage import records as rec
from storage.models import MixtureResultRow, RecipeRow, SearchRow, ValidationRow, utcnow
from storage.records import plain_json
from storage.transactions import StoreBase


class ValidationRows(StoreBase):
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
        self, validation_id: int, *, mixture: Mixture, trial_id: int | None,
        model_id: int | None, proxy_scores: Mapping[str, float | None],
        real_scores: Mapping[str, float | None], replicate: int = 0, group: str | None = None,
    ) -> rec.MixtureResultRecord:
        """One model of a mixture: proxy and real scores; the same mixture and replicate again replaces it."""
        key = mixture.key()
        fields = {
            "weights": mixture.as_dict(), "trial_id": trial_id, "model_id": model_id,
            "proxy_scores": plain_json(proxy_scores), "real_scores": plain_json(real_scores),
            "mixture_group": group,
        }

        def work(session: Session) -> rec.MixtureResultRecord:
            self._get(session, ValidationRow, validation_id, "validation")
            query = sa.select(MixtureResultRow).filter_by(validation_id=validation_id,
                                                          mixture_key=key, replicate=replicate)
            row = session.scalars(query).first()
            if row is None:
                row = MixtureResultRow(validation_id=validation_id, mixture_key=key, replicate=replicate, **fields)
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

    def get_validation(self, validation_id: int) -> rec.ValidationRecord:
        """One validation with its mixture results, by id (a search's earlier ones too)."""
        return self._read(
            lambda s: self._get(s, ValidationRow, validation_id, "validation").to_record(), "reading a validation"
        )

    def validations(self, search_id: int, *, finished_only: bool = False) -> list[rec.ValidationRecord]:
        """The search's validations with their mixture results, oldest first."""
        query = sa.select(ValidationRow).filter_by(search_id=search_id)
        if finished_only:
            query = query.filter_by(status="finished")
        query = query.order_by(ValidationRow.id)
        return self._read(lambda session: [row.to_record() for row in session.scalars(query)], "reading validations")

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
