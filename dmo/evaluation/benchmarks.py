"""Benchmarks: what a model is scored on, and with which metric.

Without a ``benchmarks:`` section each domain's dev (or test) split is a benchmark,
scored two ways: ``exact_match`` greedily decodes the short answer and compares
token ids with the reference (the tokenizer is deterministic, so this is string
equality without detokenisation quirks), and ``likelihood`` is 100·exp(−mean NLL
per answer token), a smooth second signal that moves before exact match does. Likelihood
costs a second forward pass per batch, so a search computes it only when its objective
(``evaluation.score``) reads it; ``dmo eval`` reports both.

A declared benchmark is its own file, scored by its own metric
(:mod:`dmo.evaluation.scorers`, or likelihood), or an lmms-eval task that scores the
model itself (:mod:`dmo.evaluation.lmms_eval`); its score is the ``benchmark``
score a search then optimises. Its role decides who reads it: a search reads
only ``search`` benchmarks, never a ``report`` one.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmo.config.schema import DmoConfig, LmmsEvalTask
from dmo.errors import ConfigError

SPLITS_FOR_BENCHMARKS = ("dev", "test")
ROLES = ("search", "report")
METRICS = ("exact_match", "likelihood", "benchmark")  # "benchmark": each declared benchmark's own metric


@dataclass(frozen=True)
class Benchmark:
    name: str
    domain: str | None  # the domain whose split it is; None for a declared benchmark (its own file)
    split: str  # a domain split (dev, test) or a declared benchmark's role (search, report)
    metric: str | None = None  # a declared benchmark's metric; None: exact match and likelihood both
    lmms_eval: LmmsEvalTask | None = None  # the task that scores it, where the metric is lmms_eval


def benchmarks_for(domains: tuple[str, ...], split: str) -> tuple[Benchmark, ...]:
    """The benchmark registry of a project: each domain's dev or test split."""
    if split not in SPLITS_FOR_BENCHMARKS:
        raise ConfigError(f"unknown benchmark split {split!r}; known: {', '.join(SPLITS_FOR_BENCHMARKS)}")
    return tuple(Benchmark(name=d, domain=d, split=split) for d in domains)


def declared_benchmarks(config: DmoConfig, role: str) -> tuple[Benchmark, ...]:
    """The config's benchmarks of ``role`` (search or report)."""
    if role not in ROLES:
        raise ConfigError(f"unknown benchmark role {role!r}; known: {', '.join(ROLES)}")
    return tuple(Benchmark(name=b.name, domain=None, split=role, metric=b.metric, lmms_eval=b.lmms_eval)
                 for b in config.benchmarks if b.role == role)


def search_benchmarks(config: DmoConfig) -> tuple[Benchmark, ...]:
    """What a search scores each proxy on: the declared search benchmarks, else each domain's dev split."""
    if config.benchmarks:
        return declared_benchmarks(config, "search")
    return benchmarks_for(config.domain_names, "dev")


def search_score(config: DmoConfig) -> str:
    """The score a search's objective reads: each declared benchmark's own metric, else the configured one."""
    return "benchmark" if config.benchmarks else config.evaluation.score


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ConfigError(f"unknown score {metric!r}; known: {', '.join(METRICS)}")
    return metric
