"""Models in the store: the training cache of base models, experts and mixture models.

A model's ``config_hash`` is its cache key; ``start_model`` claims the key,
so a retried or racing trainer finds the row instead of adding a second one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

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
