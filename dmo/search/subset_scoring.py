"""Subset scoring on an evaluator pool: choose a search's anchors, and rescore its best trials in full.

Both run before and after the trials, on the same pool, so they run where the proxies do (on the
evaluators' devices). The store is the caller's (:func:`dmo.search.searches.run_search`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dmo.errors import SearchError
from dmo.search.anchors import ANCHOR_RULES
from dmo.search.driver import SearchPlan
from dmo.search.objectives import objective_values
from dmo.search.pool import EvaluatorPool, ProxyRequest, ProxyResult

WAIT_S = 5.0


def select_anchors(pool: EvaluatorPool, base: Path, experts: Sequence[Path], *, rule: str, fraction: float,
                   seed: int) -> dict[str, tuple[int, ...]]:
    """Let the rule choose each benchmark's anchors: from the benchmark sizes, which an evaluator
    counts without scoring anything, or from the per-sample credit of the base and the experts,
    scored in full on the pool."""
    choose, reads_credit = ANCHOR_RULES[rule]
    if not reads_credit:
        counted = _run_all(pool, [ProxyRequest(sizes=True)], "counting the benchmarks' samples")[0]
        if counted.sizes is None:
            raise SearchError("an evaluator returned no benchmark sizes")
        return choose(counted.sizes, fraction, seed)  # type: ignore[arg-type]
    checkpoints = [base, *experts]
    results = _run_all(pool, [ProxyRequest(checkpoint=path) for path in checkpoints], "scoring the reference models")
    credit: dict[str, list[tuple[float, ...]]] = {}
    for result in results:
        if result.credit is None:
            raise SearchError("an evaluator returned no per-sample credit for a checkpoint")
        for benchmark, values in result.credit.items():
            credit.setdefault(benchmark, []).append(values)
    return choose(credit, fraction, seed)  # type: ignore[arg-type]


def rescore(pool: EvaluatorPool, weights: Sequence[Sequence[float]], plan: SearchPlan) -> list[tuple[float, dict[str, float]]]:
    """(first objective, benchmark points) of each mixture scored on every sample."""
    results = _run_all(pool, [ProxyRequest.proxy(w) for w in weights], "rescoring the best trials")
    rescored = []
    for result in results:
        scores = result.scores[plan.metric]
        rescored.append((objective_values(scores, plan.objective, plan.benchmarks)[0], dict(scores)))
    return rescored


def _run_all(pool: EvaluatorPool, requests: list[ProxyRequest], doing: str) -> list[ProxyResult]:
    for ticket, request in enumerate(requests):
        pool.submit(ticket, request)
    results: dict[int, ProxyResult] = {}
    while len(results) < len(requests):
        for ticket, outcome in pool.wait(timeout=WAIT_S):
            if isinstance(outcome, BaseException):
                raise SearchError(f"{doing} failed: {type(outcome).__name__}: {outcome}"[:500]) from outcome
            results[ticket] = outcome
    return [results[i] for i in range(len(requests))]
