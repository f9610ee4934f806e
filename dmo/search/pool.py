"""Evaluator pools: where proxies are scored. The driver only sees this interface.

`LocalPool` scores in-process, one trial at a time (tests, debugging, a
laptop); `workers.evaluators.RayPool` spreads trials over Ray actors that each
hold the task-vector bank. Results come back as `(ticket, result)` pairs, with
an exception in place of the result when an evaluation failed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dmo.config.schema import DmoConfig


@dataclass(frozen=True)
class ProxySource:
    """Where a proxy's parts come from: picklable, so Ray actors can be built from it."""

    config: DmoConfig
    base_checkpoint: Path
    expert_checkpoints: tuple[Path, ...]  # in domain order
    threads: int = 1


@dataclass(frozen=True)
class ProxyResult:
    """What scoring one proxy gives: points per metric and benchmark, and where the time went."""

    scores: dict[str, dict[str, float]]  # metric -> benchmark -> points
    samples: int
    merge_seconds: float
    eval_seconds: float
    routing: dict[str, float]


Outcome = tuple[int, ProxyResult | BaseException]


class EvaluatorPool(Protocol):
    size: int

    def submit(self, ticket: int, weights: Sequence[float], limit: int | None) -> None: ...

    def wait(self, timeout: float) -> list[Outcome]: ...

    def close(self) -> None: ...


class Evaluator(Protocol):
    def evaluate(self, weights: Sequence[float], *, limit: int | None = None) -> ProxyResult: ...


class LocalPool:
    """Serial, in-process: evaluates at `wait`, so submission order is evaluation order."""

    size = 1

    def __init__(self, evaluator: Evaluator):
        self.evaluator = evaluator
        self._queue: deque[tuple[int, list[float], int | None]] = deque()

    def submit(self, ticket: int, weights: Sequence[float], limit: int | None) -> None:
        self._queue.append((ticket, list(weights), limit))

    def wait(self, timeout: float) -> list[Outcome]:
        if not self._queue:
            return []
        ticket, weights, limit = self._queue.popleft()
        try:
            return [(ticket, self.evaluator.evaluate(weights, limit=limit))]
        except Exception as error:  # a failing evaluation fails its trial, not the search
            return [(ticket, error)]

    def close(self) -> None:
        self._queue.clear()
