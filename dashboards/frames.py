"""Records from the store as pandas DataFrames: the data shaping behind every page.

Pure functions of records (no Streamlit, no store), so they are tested on
their own; the pages only fetch records and draw what these return. Column
names follow `dmo best` / `dmo search status`: ``w <domain>`` for weights,
the benchmark name for its score, ``objective`` for the value trials are
ranked by.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dmo.fidelity import spearman
from dmo.search.objectives import pareto_front
from storage import ModelRecord, SearchRecord, TrialRecord, ValidationRecord

MEAN_SCORE = "mean score"
_STATE_COLUMNS = ("complete", "running", "pruned", "fail")


def weight_column(domain: str) -> str:
    return f"w {domain}"


def objective_names(search: SearchRecord) -> tuple[str, ...]:
    """Names of the objective values of a search, e.g. ``("mean", "worst")`` for multi."""
    return search.snapshot.objective_names


def objective_columns(names: Sequence[str]) -> list[str]:
    """``objective`` for one value; ``objective <name>`` each when there are several."""
    return ["objective"] if len(names) <= 1 else [f"objective {n}" for n in names]


def objective_label(search: SearchRecord) -> str:
    return f"{search.objective_kind} ({search.metric})"


def is_multi_objective(search: SearchRecord) -> bool:
    return len(objective_names(search)) > 1


def _benchmarks(score_maps: Iterable[Mapping[str, Any]], domains: Sequence[str]) -> list[str]:
    """Benchmarks in the scores: the search's domains first (in order), then any others sorted."""
    seen = {name for scores in score_maps for name in scores}
    return [d for d in domains if d in seen] + sorted(seen.difference(domains))


def _number(value: Any) -> float:
    """A score as a float; None (not measured) as NaN so pandas and plotly skip it."""
    return math.nan if value is None else float(value)


# --------------------------------------------------------------------------- searches


@dataclass(frozen=True)
class SearchOverview:
    """A search with what the list shows beside it; the page fetches these from the store."""

    search: SearchRecord
    counts: Mapping[str, int]
    best: TrialRecord | None


def searches_frame(overviews: Sequence[SearchOverview]) -> pd.DataFrame:
    """One row per search: identity, status, trial counts by state, best score."""
    rows = []
    for item in overviews:
        search, counts = item.search, item.counts
        rows.append(
            {
                "id": search.id,
                "name": search.name,
                "sampler": search.sampler,
                "objective": objective_label(search),
                "domains": ", ".join(search.domains),
                "status": search.status,
                **{state: int(counts.get(state, 0)) for state in _STATE_COLUMNS},
                "trials": int(sum(counts.values())),
                "best": _number(item.best.value) if item.best is not None else math.nan,
                "best trial": item.best.number if item.best is not None else None,
                "created": search.created_at,
                "updated": search.updated_at,
            }
        )
    columns = [
        "id",
        "name",
        "sampler",
        "objective",
        "domains",
        "status",
        *_STATE_COLUMNS,
        "trials",
        "best",
        "best trial",
        "created",
        "updated",
    ]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- trials


def trials_frame(
    trials: Sequence[TrialRecord], domains: Sequence[str], names: Sequence[str] = ("objective",)
) -> pd.DataFrame:
    """One row per trial: number, state, weights, objective value(s), benchmark scores.

    Failed and running trials have no objective or scores (NaN); their error,
    when the driver recorded one, is in ``error``.
    """
    benchmarks = _benchmarks((t.scores for t in trials), domains)
    value_columns = objective_columns(names)
    rows = []
    for trial in trials:
        values = list(trial.objective) + [None] * (len(value_columns) - len(trial.objective))
        rows.append(
            {
                "trial": trial.number,
                "state": trial.state,
                **{weight_column(d): float(trial.weights.get(d, 0.0)) for d in domains},
                **{column: _number(v) for column, v in zip(value_columns, values)},
                **{b: _number(trial.scores.get(b)) for b in benchmarks},
                "duration s": _number(trial.duration_s),
                "error": trial_error(trial),
            }
        )
    columns = [
        "trial",
        "state",
        *(weight_column(d) for d in domains),
        *value_columns,
        *benchmarks,
        "duration s",
        "error",
    ]
    return pd.DataFrame(rows, columns=columns)


def trial_error(trial: TrialRecord) -> str | None:
    """Why a trial failed, as the driver recorded it (``efficiency["error"]``)."""
    if trial.state != "fail":
        return None
    error = (trial.efficiency or {}).get("error")
    return str(error) if error else "no error recorded"


def best_so_far(values: Sequence[float], direction: str = "maximize") -> list[float]:
    """The running best of ``values`` (max when maximising, min when minimising)."""
    pick = max if direction == "maximize" else min
    running: list[float] = []
    for value in values:
        running.append(value if not running else pick(running[-1], value))
    return running


def progress_frame(trials: Sequence[TrialRecord], direction: str = "maximize") -> pd.DataFrame:
    """Complete trials by number with their objective and the best objective so far."""
    done = sorted(
        (t for t in trials if t.state == "complete" and t.value is not None), key=lambda t: t.number
    )
    values = [float(t.value) for t in done]  # type: ignore[arg-type]
    return pd.DataFrame(
        {
            "trial": [t.number for t in done],
            "objective": values,
            "best so far": best_so_far(values, direction),
        },
        columns=["trial", "objective", "best so far"],
    )


def top_mixtures_frame(
    ranked: Sequence[TrialRecord], domains: Sequence[str], names: Sequence[str] = ("objective",)
) -> pd.DataFrame:
    """The best trials, in the order given (``Store.best_trials``), as a per-benchmark table."""
    frame = trials_frame(ranked, domains, names).drop(columns=["state", "error"])
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


def failed_trials_frame(trials: Sequence[TrialRecord]) -> pd.DataFrame:
    failed = [t for t in trials if t.state == "fail"]
    return pd.DataFrame(
        {"trial": [t.number for t in failed], "error": [trial_error(t) for t in failed]},
        columns=["trial", "error"],
    )


def pareto_frame(
    trials: Sequence[TrialRecord], domains: Sequence[str], names: Sequence[str]
) -> pd.DataFrame:
    """Complete trials with every objective value, and whether each is on the Pareto front.

    The front is :func:`dmo.search.objectives.pareto_front`, the one `dmo search
    status` prints (every objective maximised).
    """
    scored = [
        t
        for t in trials
        if t.state == "complete"
        and len(t.objective) == len(names)
        and all(v is not None for v in t.objective)
    ]
    points = [[float(v) for v in t.objective if v is not None] for t in scored]
    front = set(pareto_front(points))
    frame = trials_frame(scored, domains, names)
    frame.insert(2, "on front", [i in front for i in range(len(scored))])
    return frame


# --------------------------------------------------------------------------- validation


def _mean_of(scores: Mapping[str, Any], benchmarks: Sequence[str]) -> float:
    values = [scores.get(b) for b in benchmarks]
    if not values or any(v is None for v in values):
        return math.nan
    return sum(float(v) for v in values) / len(values)  # type: ignore[arg-type]


def mixture_label(weights: Mapping[str, float], domains: Sequence[str]) -> str:
    return " / ".join(f"{weights.get(d, 0.0):.2f}" for d in domains)


def validation_frame(validation: ValidationRecord, domains: Sequence[str]) -> pd.DataFrame:
    """One row per validated model: weights, proxy and real score per benchmark and their means.

    A mixture trained twice (test–retest) has a row per run (``run`` 0, 1); ``set`` says where it
    was drawn: ``draw`` (held out of the search), ``pick`` (the search's best), or a reference set.

    The means run over the benchmarks scored on both sides, as
    :func:`dmo.fidelity.fidelity_summary` ranks mixtures by.
    """
    results = validation.results
    proxy_b = _benchmarks((r.proxy_scores for r in results), domains)
    real_b = set(_benchmarks((r.real_scores for r in results), domains))
    shared = [b for b in proxy_b if b in real_b]
    rows = []
    for result in results:
        rows.append(
            {
                "mixture": mixture_label(result.weights, domains),
                "trial id": result.trial_id,
                "set": result.group or "",
                "run": result.replicate,
                **{weight_column(d): float(result.weights.get(d, 0.0)) for d in domains},
                **{f"proxy {b}": _number(result.proxy_scores.get(b)) for b in shared},
                **{f"real {b}": _number(result.real_scores.get(b)) for b in shared},
                f"proxy {MEAN_SCORE}": _mean_of(result.proxy_scores, shared),
                f"real {MEAN_SCORE}": _mean_of(result.real_scores, shared),
            }
        )
    columns = [
        "mixture",
        "trial id",
        "set",
        "run",
        *(weight_column(d) for d in domains),
        *(f"proxy {b}" for b in shared),
        *(f"real {b}" for b in shared),
        f"proxy {MEAN_SCORE}",
        f"real {MEAN_SCORE}",
    ]
    return pd.DataFrame(rows, columns=columns)


def validation_benchmarks(frame: pd.DataFrame) -> list[str]:
    """What the proxy-vs-real view can compare: the mean score first, then each benchmark."""
    names = [c.removeprefix("proxy ") for c in frame.columns if c.startswith("proxy ")]
    return [MEAN_SCORE, *(n for n in names if n != MEAN_SCORE)]


@dataclass(frozen=True)
class Fidelity:
    """Proxy vs real scores of one benchmark, and their Spearman ρ (NaN under two mixtures)."""

    points: pd.DataFrame  # columns: mixture, proxy, real
    rho: float
    dropped: int  # mixtures left out because a side has no score


def fidelity(frame: pd.DataFrame, benchmark: str = MEAN_SCORE) -> Fidelity:
    points = (
        pd.DataFrame(
            {
                "mixture": frame["mixture"],
                "proxy": frame[f"proxy {benchmark}"],
                "real": frame[f"real {benchmark}"],
            }
        )
        .dropna(subset=["proxy", "real"])
        .reset_index(drop=True)
    )
    rho = spearman(points["proxy"].tolist(), points["real"].tolist()) if len(points) else math.nan
    return Fidelity(points=points, rho=rho, dropped=len(frame) - len(points))


# --------------------------------------------------------------------------- models


def model_label(model: ModelRecord) -> str:
    """``expert ocr #3``: kind, domain and id, unique among models."""
    return " ".join(part for part in (model.kind, model.domain, f"#{model.id}") if part)


def retention_of(model: ModelRecord) -> list[float]:
    efficiency = model.efficiency or {}
    return [float(r) for r in efficiency.get("retention") or []]


def dev_score(model: ModelRecord, metric: str = "exact_match") -> float:
    """An expert's dev score on its own domain; base and mixture models' dev average
    (as `dmo search status` shows them)."""
    dev = (model.metrics or {}).get("dev") or {}
    own = (dev.get("benchmarks") or {}).get(model.domain or "", {}).get(metric)
    return _number(own if own is not None else (dev.get("average") or {}).get(metric))


def models_frame(models: Sequence[ModelRecord]) -> pd.DataFrame:
    """One row per model: kind, status, MoD settings, FLOPs / KV ratios, training outcome."""
    rows = []
    for model in models:
        efficiency = model.efficiency or {}
        retention = retention_of(model)
        metrics = model.metrics or {}
        rows.append(
            {
                "id": model.id,
                "model": model_label(model),
                "kind": model.kind,
                "domain": model.domain,
                "status": model.status,
                "schedule": model.mod_schedule or efficiency.get("schedule"),
                "layers": len(retention) or None,
                "mean retention": sum(retention) / len(retention) if retention else math.nan,
                "FLOPs ratio": _number(model.flops_ratio),
                "KV ratio": _number(model.kv_ratio),
                "tanh α": _number(efficiency.get("tanh_alpha")),
                "tanh β": _number(efficiency.get("tanh_beta")),
                "final loss": _number(metrics.get("final_loss")),
                "dev score": dev_score(model),
                "train s": _number(metrics.get("train_seconds", model.duration_s)),
                "attempts": model.attempts,
                "error": model.error,
            }
        )
    columns = [
        "id",
        "model",
        "kind",
        "domain",
        "status",
        "schedule",
        "layers",
        "mean retention",
        "FLOPs ratio",
        "KV ratio",
        "tanh α",
        "tanh β",
        "final loss",
        "dev score",
        "train s",
        "attempts",
        "error",
    ]
    return pd.DataFrame(rows, columns=columns)


def loss_curves_frame(models: Sequence[ModelRecord]) -> pd.DataFrame:
    """Long format (model, step, loss) from each model's ``metrics["loss_curve"]``."""
    rows = [
        {"model": model_label(model), "step": int(point[0]), "loss": float(point[1])}
        for model in models
        for point in (model.metrics or {}).get("loss_curve") or []
        if len(point) == 2 and point[1] is not None
    ]
    return pd.DataFrame(rows, columns=["model", "step", "loss"])


def retention_frame(models: Sequence[ModelRecord]) -> pd.DataFrame:
    """Long format (model, layer, retention): the share of vision tokens each layer keeps."""
    rows = [
        {"model": model_label(model), "layer": layer, "retention": value}
        for model in models
        for layer, value in enumerate(retention_of(model))
    ]
    return pd.DataFrame(rows, columns=["model", "layer", "retention"])


def ratios_frame(models: Sequence[ModelRecord]) -> pd.DataFrame:
    """Long format (model, measure, ratio): FLOPs and KV cache as fractions of the dense model."""
    rows = [
        {"model": model_label(model), "measure": measure, "ratio": float(value)}
        for model in models
        for measure, value in (("FLOPs", model.flops_ratio), ("KV cache", model.kv_ratio))
        if value is not None
    ]
    return pd.DataFrame(rows, columns=["model", "measure", "ratio"])
