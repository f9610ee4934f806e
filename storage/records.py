"""What goes in and out of the store: frozen, session-free records, and the
checks that turn caller values into what the JSON columns hold.

Callers never see ORM objects or sessions, so nothing lazy-loads behind their
back and a record can cross a process boundary (Ray) as plain data.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

from dmo.config.schema import DmoConfig
from dmo.config.snapshot import SearchSnapshot
from dmo.mixture import Mixture

MODEL_KINDS = ("base", "expert", "mixture")
MODEL_STATUSES = ("running", "finished", "failed")
SEARCH_STATUSES = ("created", "running", "finished", "failed", "interrupted")
TRIAL_STATES = ("running", "complete", "pruned", "fail")
VALIDATION_STATUSES = ("running", "finished", "failed")


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A base, expert or mixture-trained model and its efficiency settings.

    ``efficiency`` holds the MoD schedule, per-layer retention, TanhNorm α/β
    and the FLOPs / KV-cache ratios versus the dense model, as given by the
    trainer; ``mod_schedule``, ``flops_ratio`` and ``kv_ratio`` repeat the
    keys of the same name for sorting and filtering.
    """

    id: int
    kind: str
    config_hash: str
    domain: str | None
    base_id: int | None
    status: str
    training: dict[str, Any]
    finetune: str
    efficiency: dict[str, Any]
    mod_schedule: str | None
    flops_ratio: float | None
    kv_ratio: float | None
    checkpoint_uri: str | None
    checkpoint_sha256: str | None
    metrics: dict[str, Any]
    error: str | None
    attempts: int
    claim_token: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None


@dataclass(frozen=True, slots=True)
class SearchRecord:
    """A search and the typed snapshot it runs (see :class:`dmo.config.snapshot.SearchSnapshot`)."""

    id: int
    name: str
    study_name: str
    snapshot: SearchSnapshot
    sampler: str
    domains: tuple[str, ...]
    expert_ids: tuple[int, ...]
    status: str
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    prediction: dict[str, Any] | None = None  # the surrogate's predicted optimum (a prediction, not a trial)
    anchors: dict[str, tuple[int, ...]] | None = None  # the samples its trials are scored on; None: all

    @property
    def config(self) -> DmoConfig:
        """The config the search runs (overrides applied)."""
        return self.snapshot.config

    @property
    def trials_target(self) -> int:
        return self.snapshot.trials

    @property
    def metric(self) -> str:
        return self.snapshot.metric

    @property
    def benchmarks(self) -> tuple[str, ...]:
        return self.snapshot.benchmarks

    @property
    def benchmark_metrics(self) -> dict[str, str]:
        return self.snapshot.benchmark_metrics

    @property
    def objective_kind(self) -> str:
        return self.snapshot.objective_kind

    @property
    def direction(self) -> str:
        """Direction of the first objective value, the one trials are ranked by."""
        return self.snapshot.directions[0]


@dataclass(frozen=True, slots=True)
class TrialRecord:
    id: int
    search_id: int
    number: int
    state: str
    weights: dict[str, float]
    merge_method: str
    params: dict[str, Any]
    scores: dict[str, float | None]
    objective: tuple[float | None, ...]
    routing: dict[str, Any] | None
    efficiency: dict[str, Any] | None
    duration_s: float | None
    created_at: datetime
    updated_at: datetime
    full_value: float | None = None  # first objective on every sample, for a trial of an anchored search rescored
    full_scores: dict[str, float] | None = None  # benchmark -> points on every sample, likewise

    @property
    def value(self) -> float | None:
        """The first objective as the search scored it (on its anchor subset, if it has one)."""
        return self.objective[0] if self.objective else None

    @property
    def final_value(self) -> float | None:
        """What best_trials ranks a trial by: its full-split value where it was rescored."""
        return self.full_value if self.full_value is not None else self.value

    @property
    def mixture(self) -> Mixture:
        return Mixture(tuple(self.weights), tuple(self.weights.values()))


@dataclass(frozen=True, slots=True)
class MixtureResultRecord:
    """One mixture of a validation: the proxy's scores next to the real model's."""

    id: int
    validation_id: int
    weights: dict[str, float]
    trial_id: int | None
    model_id: int | None
    proxy_scores: dict[str, float | None]
    real_scores: dict[str, float | None]
    created_at: datetime
    replicate: int = 0  # the mixture's n-th model (another seed), for test–retest
    group: str | None = None  # draw, pick, pairs, triples or simplex


@dataclass(frozen=True, slots=True)
class ValidationRecord:
    id: int
    search_id: int
    config: dict[str, Any]
    status: str
    summary: dict[str, Any]
    error: str | None
    results: tuple[MixtureResultRecord, ...]
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class RecipeRecord:
    id: int
    search_id: int
    trial_id: int | None
    format: str
    path: str
    sha256: str
    budget: int | None
    created_at: datetime


def to_json(record: Any) -> Any:
    """A record (or list/tuple/dict of them) as JSON-ready data; datetimes in ISO 8601."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: to_json(getattr(record, f.name)) for f in dataclasses.fields(record)}
    if isinstance(record, datetime):
        return record.isoformat()
    if isinstance(record, BaseModel):
        return record.model_dump(mode="json")
    if isinstance(record, dict):
        return {str(k): to_json(v) for k, v in record.items()}
    if isinstance(record, (list, tuple)):
        return [to_json(v) for v in record]
    return record


# --------------------------------------------------------------------------- values going in


def one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} '{value}'; known: {', '.join(allowed)}")
    return value


def plain_json(value: Any, where: str = "value") -> Any:
    """A JSON-ready copy: tuples become lists, numpy scalars Python numbers, and NaN/inf
    become None (PostgreSQL's JSON refuses them; None reads as "not measured")."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain_json(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return plain_json(value.item(), where)
    raise ValueError(f"{where}: {type(value).__name__} cannot be stored as JSON")
