"""The typed, versioned snapshot a search is stored with.

A search runs the project config as it was when the search was created, with
the command line's overrides (``--trials``, ``--sampler``, ``--seed``)
already applied, from one base model. That is all a resume, a validation or
an export needs to know, so it is stored as one JSON document, validated on
write and parsed back on read. A change to its shape bumps ``version`` and
comes with an Alembic migration that rewrites stored snapshots.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dmo.config.names import OBJECTIVES
from dmo.config.schema import DmoConfig

SNAPSHOT_VERSION = 2


class SearchSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[2] = SNAPSHOT_VERSION
    config: DmoConfig = Field(description="The config the search runs, overrides applied.")
    base_id: int | None = Field(None, description="Store id of the base model the experts share.")

    @property
    def trials(self) -> int:
        return self.config.search.trials

    @property
    def seed(self) -> int:
        return self.config.search.seed

    @property
    def sampler(self) -> str:
        return self.config.search.sampler

    @property
    def metric(self) -> str:
        """The per-benchmark score the objective is computed from ("benchmark": each declared one's own metric)."""
        return "benchmark" if self.config.benchmarks else self.config.evaluation.score

    @property
    def benchmarks(self) -> tuple[str, ...]:
        """The names the trials' scores are keyed by: search benchmarks, or the domains (their dev splits)."""
        return self.config.benchmark_names

    @property
    def benchmark_metrics(self) -> dict[str, str]:
        """Each scored benchmark's metric."""
        if self.config.benchmarks:
            return {b.name: b.metric for b in self.config.benchmarks if b.role == "search"}
        return dict.fromkeys(self.config.domain_names, self.config.evaluation.score)

    @property
    def objective_kind(self) -> str:
        return self.config.search.objective.kind

    @property
    def objective_names(self) -> tuple[str, ...]:
        return OBJECTIVES[self.objective_kind]

    @property
    def directions(self) -> tuple[str, ...]:
        """Optuna directions, one per objective value: every score is maximised."""
        return ("maximize",) * len(self.objective_names)


__all__ = ["SNAPSHOT_VERSION", "SearchSnapshot"]
