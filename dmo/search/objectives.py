"""What a search maximises, from a proxy's per-benchmark scores (points, 0-100).

Kinds (``search.objective.kind``):

- ``mean``: the average over benchmarks (default);
- ``weighted``: a weighted average, weights renormalised to sum to 1, so only
  their ratios matter;
- ``worst``: the lowest benchmark, for a mixture that must not give up any
  domain;
- ``multi``: ``(mean, worst)``, both maximised, for a Pareto front.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from dmo.config import names
from dmo.config.schema import DmoConfig, ObjectiveSettings
from dmo.errors import SearchError

Scores = Mapping[str, float]
_WHERE = "search.objective"


def _checked(scores: Scores) -> dict[str, float]:
    if not scores:
        raise SearchError("no benchmark scores to compute the objective from", where=_WHERE)
    values = {name: float(value) for name, value in scores.items()}
    bad = sorted(name for name, value in values.items() if not math.isfinite(value))
    if bad:
        raise SearchError(f"benchmark scores are NaN or infinite: {', '.join(bad)}", where=_WHERE)
    return values


def _select(values: dict[str, float], benchmarks: Sequence[str] | None) -> dict[str, float]:
    if benchmarks is None:
        return values
    missing = [b for b in benchmarks if b not in values]
    if missing:
        raise SearchError(
            f"no score for benchmarks {', '.join(missing)}",
            where=_WHERE,
            hint=f"scored benchmarks: {', '.join(sorted(values))}",
        )
    return {b: values[b] for b in benchmarks}


def mean_score(scores: Scores, benchmarks: Sequence[str] | None = None) -> float:
    values = _select(_checked(scores), benchmarks)
    return sum(values.values()) / len(values)


def worst_score(scores: Scores, benchmarks: Sequence[str] | None = None) -> float:
    return min(_select(_checked(scores), benchmarks).values())


def weighted_score(scores: Scores, weights: Mapping[str, float]) -> float:
    """Σ_b ω_b·s_b / Σ_b ω_b over the benchmarks named in ``weights``."""
    where = f"{_WHERE}.weights"
    negative = sorted(name for name, w in weights.items() if w < 0 or not math.isfinite(w))
    if negative:
        raise SearchError(
            f"benchmark weights must be finite and non-negative: {', '.join(negative)}",
            where=where,
        )
    total = sum(weights.values())
    if total <= 0:
        raise SearchError(
            "benchmark weights are all zero", where=where, hint="give one a positive weight"
        )
    values = _select(_checked(scores), list(weights))
    return sum(weights[name] * values[name] for name in weights) / total


def _mean(
    scores: Scores, settings: ObjectiveSettings, benchmarks: Sequence[str] | None
) -> tuple[float, ...]:
    return (mean_score(scores, benchmarks),)


def _weighted(
    scores: Scores, settings: ObjectiveSettings, benchmarks: Sequence[str] | None
) -> tuple[float, ...]:
    if settings.weights is None:  # the schema forbids this; keep the error readable anyway
        raise SearchError("objective kind 'weighted' needs weights", where=f"{_WHERE}.weights")
    return (weighted_score(scores, settings.weights),)


def _worst(
    scores: Scores, settings: ObjectiveSettings, benchmarks: Sequence[str] | None
) -> tuple[float, ...]:
    return (worst_score(scores, benchmarks),)


def _multi(
    scores: Scores, settings: ObjectiveSettings, benchmarks: Sequence[str] | None
) -> tuple[float, ...]:
    return (mean_score(scores, benchmarks), worst_score(scores, benchmarks))


_Objective = Callable[[Scores, ObjectiveSettings, Sequence[str] | None], tuple[float, ...]]
# kind -> function; the names of each kind's values (all maximised) are in dmo.config.names.
OBJECTIVES: dict[str, _Objective] = {
    "mean": _mean,
    "weighted": _weighted,
    "worst": _worst,
    "multi": _multi,
}


def mean_weights(config: DmoConfig) -> dict[str, float] | None:
    """The weights of the mean a search maximises, None for the plain mean: the objective's own
    (kind ``weighted``), else the declared search benchmarks' where they are not all equal.
    Validation ranks real models by the same mean (dmo.fidelity.validate)."""
    objective = config.search.objective
    if objective.kind == "weighted" and objective.weights:
        return dict(objective.weights)
    if objective.kind != "mean":  # worst and multi take the plain mean (SearchPlan weights only `mean`)
        return None
    declared = {b.name: b.weight for b in config.benchmarks if b.role == "search"}
    return declared if any(w != 1.0 for w in declared.values()) else None


def _lookup(settings: ObjectiveSettings) -> _Objective:
    try:
        return OBJECTIVES[settings.kind]
    except KeyError:
        raise SearchError(
            f"unknown objective kind {settings.kind!r}",
            where=f"{_WHERE}.kind",
            hint=f"known kinds: {', '.join(OBJECTIVES)}",
        ) from None


def objective_values(
    scores: Scores, settings: ObjectiveSettings, benchmarks: Sequence[str] | None = None
) -> tuple[float, ...]:
    """The objective as a tuple with one value per direction (what ``study.tell`` takes).

    ``benchmarks`` limits ``mean``, ``worst`` and ``multi`` to those benchmarks
    (e.g. one per domain) and makes a missing score an error instead of a
    silently smaller average; ``weighted`` always uses the benchmarks it weights.
    """
    return _lookup(settings)(scores, settings, benchmarks)


def compute_objective(
    scores: Scores, settings: ObjectiveSettings, benchmarks: Sequence[str] | None = None
) -> float | tuple[float, ...]:
    """Like :func:`objective_values`, but a single objective is a plain float."""
    values = objective_values(scores, settings, benchmarks)
    return values[0] if len(values) == 1 else values


def objective_names(settings: ObjectiveSettings) -> list[str]:
    """Names of the objective values, in order (for ``study.set_metric_names``)."""
    _lookup(settings)
    return list(names.OBJECTIVES[settings.kind])


def objective_directions(settings: ObjectiveSettings) -> list[str]:
    """Optuna directions of the objective values: every score is maximised."""
    return ["maximize"] * len(objective_names(settings))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (every objective maximised), in input order."""
    front = []
    for i, p in enumerate(points):
        dominated = any(
            all(q_k >= p_k for q_k, p_k in zip(q, p)) and any(q_k > p_k for q_k, p_k in zip(q, p))
            for j, q in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front
