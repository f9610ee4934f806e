"""Models in the store: the training cache of base models, experts and mixture models.

A model's ``config_hash`` is its cache key; ``start_model`` claims the key,
so a retried or racing trainer finds the row instead of adding a second one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import PurePath
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dmo.errors import StoreError
from storage import records as rec
from storage.models import ModelRow, utcnow
from storage.records import one_of, plain_json
from storage.transactions import StoreBase

log = logging.getLogger("dmo.storage")


def _efficiency_columns(efficiency: dict[str, Any]) -> dict[str, Any]:
    """The efficiency JSON plus the keys repeated as columns for sorting and filtering."""
    schedule = efficiency.get("schedule")
    flops, kv = efficiency.get("flops_ratio"), efficiency.get("kv_ratio")
    return {
        "efficiency": efficiency,
        "mod_schedule": None if schedule is None else str(schedule),
        "flops_ratio": None if flops is None else float(flops),
        "kv_ratio": None if kv is None else float(kv),
    }



def _stale(heartbeat: datetime | None, now: datetime, stale_after_s: float | None) -> bool:
    if stale_after_s is None:
        return False
    return heartbeat is None or (now - heartbeat).total_seconds() > stale_after_s


class ModelRows(StoreBase):
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
        training: Mapping[str, Any], finetune: str, efficiency: Mapping[str, Any],
        claim: str | None = None, stale_after_s: float | None = None, retrain: bool = False,
    ) -> rec.ModelRecord:
        """Claim the training of ``config_hash`` for ``claim`` (a token of the caller's).

        The caller owns the run exactly when the returned row's ``claim_token`` is
        its token. A new hash, a failed row, a running row whose heartbeat is older
        than ``stale_after_s`` (its trainer died) and, with ``retrain``, a finished
        row (its checkpoint is gone) become a new attempt claimed by the caller; a
        running row with a live trainer, or a finished one, is returned as is. Two
        callers racing for one hash serialise on the row (SQLite's write lock,
        PostgreSQL's row lock), so a model is never trained twice at once.
        """
        one_of(kind, rec.MODEL_KINDS, "model kind")
        fields = {
            "training": plain_json(training),
            "finetune": finetune,
            **_efficiency_columns(plain_json(efficiency)),
        }

        def work(session: Session) -> rec.ModelRecord:
            query = sa.select(ModelRow).filter_by(config_hash=config_hash).with_for_update()
            row = session.scalars(query).first()
            now = utcnow()
            if row is None:
                if base_id is not None:
                    self._get(session, ModelRow, base_id, "model")
                row = ModelRow(kind=kind, config_hash=config_hash, domain=domain, base_id=base_id,
                               status="running", metrics={}, claim_token=claim, heartbeat_at=now, **fields)
                session.add(row)
            elif (row.status == "failed" or (row.status == "finished" and retrain)
                  or (row.status == "running" and _stale(row.heartbeat_at, now, stale_after_s))):
                for key, value in fields.items():
                    setattr(row, key, value)
                row.status, row.error, row.attempts = "running", None, row.attempts + 1
                row.started_at, row.finished_at, row.duration_s = now, None, None
                row.claim_token, row.heartbeat_at = claim, now
            session.flush()
            return row.to_record()

        return self._write_racing(work, doing="starting a model")

    def beat_model(self, model_id: int, claim: str) -> bool:
        """Say that the trainer holding ``claim`` is alive; False when it no longer holds it."""

        def work(session: Session) -> bool:
            done = session.execute(
                sa.update(ModelRow)
                .where(ModelRow.id == model_id, ModelRow.claim_token == claim, ModelRow.status == "running")
                .values(heartbeat_at=utcnow())
            )
            return done.rowcount == 1

        return self._run(work, write=True, doing="beating a model's heartbeat")

    def finish_model(
        self, model_id: int, *, checkpoint_uri: str | PurePath, checkpoint_sha256: str,
        metrics: Mapping[str, Any], duration_s: float, efficiency: Mapping[str, Any] | None = None,
        claim: str | None = None,
    ) -> rec.ModelRecord:
        """Record the checkpoint; ``efficiency`` (e.g. measured FLOPs and KV ratios) is
        merged into the settings given at start. With ``claim``, only its holder may finish."""

        def work(session: Session) -> rec.ModelRecord:
            row = self._get(session, ModelRow, model_id, "model")
            if claim is not None and row.claim_token != claim:
                raise StoreError(f"model {model_id} is being trained by another process now",
                                 where="store", hint="this trainer was presumed dead and replaced; its result is dropped")
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

    def fail_model(self, model_id: int, error: str, *, claim: str | None = None) -> None:
        def work(session: Session) -> None:
            row = self._get(session, ModelRow, model_id, "model")
            if row.status == "finished" or (claim is not None and row.claim_token != claim):
                log.warning("model %d is finished or trained elsewhere; ignoring a failure: %s", model_id, error)
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
