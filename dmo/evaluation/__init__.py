"""Benchmarks and scoring."""

from __future__ import annotations

from dmo._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Benchmark": "dmo.evaluation.benchmarks",
        "benchmarks_for": "dmo.evaluation.benchmarks",
        "BenchmarkScore": "dmo.evaluation.scoring",
        "evaluate": "dmo.evaluation.scoring",
        "EvaluationResult": "dmo.evaluation.scoring",
        "METRICS": "dmo.evaluation.benchmarks",
    },
)

__all__ = [
    "Benchmark",
    "benchmarks_for",
    "BenchmarkScore",
    "evaluate",
    "EvaluationResult",
    "METRICS",
]
