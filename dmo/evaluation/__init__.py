"""Benchmarks and scoring."""

from __future__ import annotations

from dmo.evaluation.benchmarks import METRICS, Benchmark, benchmarks_for
from dmo.evaluation.evaluate import BenchmarkScore, EvaluationResult, evaluate

__all__ = ["METRICS", "Benchmark", "BenchmarkScore", "EvaluationResult", "benchmarks_for", "evaluate"]
