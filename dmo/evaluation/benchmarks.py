"""Benchmarks: one per domain and split, scored by exact match and by likelihood.

`exact_match` greedily decodes the short answer and compares token ids with
the reference (the tokenizer is deterministic, so this is string equality
without detokenisation quirks). `likelihood` is 100·exp(−mean NLL per answer
token), a smooth second signal that moves before exact match does.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmo.errors import ConfigError

SPLITS_FOR_BENCHMARKS = ("dev", "test")
METRICS = ("exact_match", "likelihood")


@dataclass(frozen=True)
class Benchmark:
    name: str
    domain: str
    split: str


def benchmarks_for(domains: tuple[str, ...], split: str) -> tuple[Benchmark, ...]:
    """The benchmark registry of a project: each domain's dev or test split."""
    if split not in SPLITS_FOR_BENCHMARKS:
        raise ConfigError(f"unknown benchmark split {split!r}; known: {', '.join(SPLITS_FOR_BENCHMARKS)}")
    return tuple(Benchmark(name=d, domain=d, split=split) for d in domains)


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ConfigError(f"unknown score {metric!r}; known: {', '.join(METRICS)}")
    return metric
