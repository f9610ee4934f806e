"""Searches and their trials in the store.

A search row holds the typed snapshot it runs (validated on write, parsed
back on read); a trial row is recorded idempotently, so a resumed search never
duplicates or silently rewrites a finished trial.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dmo.config.snapshot import SearchSnapshot
from dmo.errors import SearchError, StoreError
from dmo.mixture import Mixture
from storage import records as rec
from storage.models import ModelRow, SearchExpertRow, SearchRow, TrialRow, utcnow
from storage.records import one_of, plain_json
from storage.transactions import StoreBase

log = logging.getLogger("dmo.storage")
DIRECTIONS = ("maximize", "minimize")
_CLOSED_SEARCH = ("finished", "failed", "interrupted")


class SearchRows(StoreBase):
    def create_search(
        self, snapshot: SearchSnapshot, *, study_name: str, expert_ids: Sequence[int]
    ) -> rec.SearchRecord:
        """A new search running ``snapshot``; its Optuna study name must be new.

        The snapshot is written as JSON and parsed back before the row is
        committed, so what is stored is exactly what every later reader gets.
        """
        payload = plain_json(snapshot.model_dump(mode="json"))
        if SearchSnapshot.model_validate(payload) != snapshot:
            raise ValueError("the search snapshot does not survive a JSON round trip")
        config = snapshot.config

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
                name=config.project.name, study_name=study_name, snapshot=payload,
                sampler=config.search.sampler, domains=list(config.domain_names), status="created",
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

    def set_search_prediction(self, search_id: int, prediction: Mapping[str, Any] | None) -> None:
        """Store the surrogate's predicted optimum of a search (None clears it)."""

        def work(session: Session) -> None:
            row = self._get(session, SearchRow, search_id, "search")
            row.prediction = None if prediction is None else plain_json(dict(prediction))

        self._run(work, write=True, doing="storing a search's prediction")

    def set_search_anchors(self, search_id: int, anchors: Mapping[str, Sequence[int]]) -> None:
        """Store a search's anchor subset, once: a search whose trials were scored on one subset must
        never score the rest on another."""

        def work(session: Session) -> None:
            row = self._get(session, SearchRow, search_id, "search")
            chosen = {name: sorted(int(i) for i in indices) for name, indices in anchors.items()}
            if row.anchors is not None and row.anchors != chosen:
                raise StoreError(f"search {search_id} already has an anchor subset", where="store")
            row.anchors = chosen

        self._run(work, write=True, doing="storing a search's anchor subset")

    def set_trial_full(self, search_id: int, number: int, *, value: float, scores: Mapping[str, float]) -> None:
        """Store a complete trial's first objective and scores on every sample (its rescore)."""

        def work(session: Session) -> None:
            query = sa.select(TrialRow).filter_by(search_id=search_id, number=number, state="complete")
            row = session.scalars(query).first()
            if row is None:
                raise StoreError(f"search {search_id} has no complete trial {number}", where="store")
            row.full_value, row.full_scores, row.updated_at = float(value), plain_json(dict(scores)), utcnow()

        self._run(work, write=True, doing="storing a trial's rescore")

    # ----------------------------------------------------------------------- trials

    def record_trial(
        self, *, search_id: int, number: int, mixture: Mixture, merge_method: str,
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
            "state": state, "weights": mixture.as_dict(), "merge_method": merge_method,
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
        ``direction`` defaults to the search's (:attr:`SearchRecord.direction`). In a search scored on
        an anchor subset, the trials rescored on every sample come first, by that full value."""

        def work(session: Session) -> list[rec.TrialRecord]:
            search = self._get(session, SearchRow, search_id, "search").to_record()
            order = one_of(direction or search.direction, DIRECTIONS, "direction")
            value = TrialRow.objective_value
            query = (
                sa.select(TrialRow)
                .filter_by(search_id=search_id, state="complete")
                .where(value.is_not(None))
                .order_by(TrialRow.full_value.is_(None),
                          *((TrialRow.full_value.desc(), value.desc()) if order == "maximize"
                            else (TrialRow.full_value.asc(), value.asc())),
                          TrialRow.number)
                .limit(top_k)
            )
            return [r.to_record() for r in session.scalars(query)]

        return self._read(work, "ranking trials")
