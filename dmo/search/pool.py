"""Evaluator pools: where proxies are scored. The driver only sees this interface.

`LocalPool` scores in-process, one trial at a time (tests, debugging, a
laptop); `workers.evaluators.RayPool` spreads trials over Ray actors that each
hold the task-vector bank. Results come back as `(ticket, result)` pairs, with
an exception in place of the result when an evaluation failed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
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
class ProxyRequest:
    """One job for an evaluator: a proxy's weights and which samples to score; or, with
    ``checkpoint``, a stored model (the base or an expert) scored in full with each sample's credit,
    or, with ``sizes``, only how many samples each benchmark has: what a search chooses its anchor
    subset from."""

    weights: tuple[float, ...] = ()
    limit: int | None = None  # the first N samples of each benchmark (the pruning probe); None: all
    subsets: Mapping[str, tuple[int, ...]] | None = None  # an anchor subset per benchmark
    checkpoint: Path | None = None
    sizes: bool = False

    @classmethod
    def proxy(cls, weights: Sequence[float], *, limit: int | None = None,
              subsets: Mapping[str, tuple[int, ...]] | None = None) -> ProxyRequest:
        return cls(weights=tuple(float(w) for w in weights), limit=limit, subsets=subsets)


@dataclass(frozen=True)
class ProxyResult:
    """What scoring one proxy gives: points per metric and benchmark, and where the time went."""

    scores: dict[str, dict[str, float]]  # metric -> benchmark -> points
    samples: int
    merge_seconds: float
    eval_seconds: float
    routing: dict[str, float]
    # For a checkpoint request: benchmark -> each sample's credit in [0, 1] by the search's score.
    credit: dict[str, tuple[float, ...]] | None = None
    # For a sizes request: benchmark -> how many samples a full score reads (those dmo scores sample by sample).
    sizes: dict[str, int] | None = None


Outcome = tuple[int, ProxyResult | BaseException]


class EvaluatorPool(Protocol):
    size: int

    def submit(self, ticket: int, request: ProxyRequest) -> None: ...

    def wait(self, timeout: float) -> list[Outcome]: ...

    def close(self) -> None: ...


class Evaluator(Protocol):
    def run(self, request: ProxyRequest) -> ProxyResult: ...


class LocalPool:
    """Serial, in-process: evaluates at `wait`, so submission order is evaluation order."""

    size = 1

    def __init__(self, evaluator: Evaluator):
        self.evaluator = evaluator
        self._queue: deque[tuple[int, ProxyRequest]] = deque()

    def submit(self, ticket: int, request: ProxyRequest) -> None:
        self._queue.append((ticket, request))

    def wait(self, timeout: float) -> list[Outcome]:
        if not self._queue:
            return []
        ticket, request = self._queue.popleft()
        try:
            return [(ticket, self.evaluator.run(request))]
        except Exception as error:  # a failing evaluation fails its trial, not the search
            return [(ticket, error)]

    def close(self) -> None:
        self._queue.clear()
