"""Validate a search: do proxies rank mixtures like models trained on them?

Held-out by default: the mixtures are Dirichlet(1) draws from a seed of
their own, disjoint from the search's trials (``dmo.fidelity.draws``), or the
reference study's 7 + 21 + 21 sets. The search's own best trials are trained
too but reported apart: they were picked for high proxy scores, so counting
them would flatter the proxy. Each mixture gets a proxy score (merged in
memory, as in the search) and a real score (a model trained on the mixture:
same base, budget and schedule as the experts); with ``repeats = 2`` every
held-out mixture is trained twice on two seeds, which measures how well the
real ranking agrees with itself (its test–retest ceiling). How models are
trained is passed in, so this runs with or without Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dmo.config.schema import DmoConfig
from dmo.evaluation import evaluate
from dmo.evaluation.benchmarks import search_benchmarks
from dmo.fidelity.calibration import (
    MAX_FIT,
    fit_on_validations,
    judge,
    judge_fitted,
    mixture_key,
)
from dmo.fidelity.draws import ValidationMixture, held_out_draws, reference_protocol
from dmo.fidelity.mixture_law import judge_blend, judge_mixture_law
from dmo.fidelity.ranking import benchmark_mean, fidelity_summary, retest_agreement
from dmo.mixture import Mixture
from dmo.models.backends import backend_for
from dmo.search.objectives import mean_weights
from dmo.search.pool import Evaluator
from dmo.training.jobs import ModelSpec, mixture_spec
from storage import ModelRecord, SearchRecord, Store, ValidationRecord

TrainMixtures = Callable[[list[ModelSpec]], list[ModelRecord]]
Scores = dict[str, float]


@dataclass(frozen=True)
class ValidationPlan:
    """What a validation trains. ``mixtures`` counts held-out draws (the reference protocol fixes its own)."""

    protocol: Literal["held-out", "reference"] = "held-out"
    mixtures: int = 20
    seed: int = 0
    repeats: int = 1  # models per held-out mixture, each on its own seed; 2 measures test–retest
    picks: int = 3  # the search's best trials, trained and reported apart

    def __post_init__(self) -> None:
        if self.protocol not in ("held-out", "reference"):
            raise ValueError(f"unknown protocol {self.protocol!r}")
        if self.mixtures < 2 or self.repeats < 1 or self.picks < 0:
            raise ValueError("a validation needs at least 2 mixtures, 1 repeat and 0 or more picks")


@dataclass(frozen=True)
class _Planned:
    mixture: Mixture
    group: str
    trial_id: int | None = None
    trial_number: int | None = None


def plan_mixtures(store: Store, search: SearchRecord, plan: ValidationPlan) -> list[_Planned]:
    """The held-out (or reference) mixtures first, then the search's picks."""
    names = list(search.domains)
    trials = store.trials(search.id)
    if plan.protocol == "reference":
        drawn: list[ValidationMixture] = reference_protocol(names, seed=plan.seed)
    else:
        drawn = held_out_draws(names, plan.mixtures, seed=plan.seed,
                               avoid=[[t.weights[n] for n in names] for t in trials])
    planned = [_Planned(v.mixture, v.group) for v in drawn]
    keys = {p.mixture.key() for p in planned}
    for trial in store.best_trials(search.id, top_k=plan.picks) if plan.picks else []:
        mixture = Mixture.of(names, [trial.weights[n] for n in names])
        if mixture.key() not in keys:  # a reference grid point the search also tried is scored once
            planned.append(_Planned(mixture, "pick", trial.id, trial.number))
    return planned


def validate_search(
    store: Store,
    search: SearchRecord,
    *,
    plan: ValidationPlan,
    proxy: Evaluator,
    train_mixtures: TrainMixtures,
) -> dict[str, Any]:
    config = search.config
    metric = search.metric
    planned = plan_mixtures(store, search, plan)
    earlier = store.validations(search.id, finished_only=True)  # their pooled calibration is judged on these draws
    validation = store.create_validation(search.id, config={**asdict(plan), "metric": metric})
    try:
        proxy_scores = [proxy.evaluate(list(p.mixture.weights)).scores[metric] for p in planned]
        jobs = [(i, r) for i, p in enumerate(planned) for r in range(plan.repeats if p.group != "pick" else 1)]
        models = train_mixtures([mixture_spec(planned[i].mixture, r) for i, r in jobs])
        real: dict[tuple[int, int], Scores] = {}
        for (i, r), model in zip(jobs, models, strict=True):
            real[i, r] = _real_scores(config, model, metric)
            store.record_mixture_result(validation.id, mixture=planned[i].mixture, trial_id=planned[i].trial_id,
                                        model_id=model.id, proxy_scores=proxy_scores[i], real_scores=real[i, r],
                                        replicate=r, group=planned[i].group)
        summary = summarise(planned, proxy_scores, real, list(search.benchmarks), plan, weights=mean_weights(config))
        if earlier:
            transfer = judge_earlier_calibration(earlier, planned, proxy_scores, real, list(search.benchmarks), plan,
                                                 domains=search.domains, weights=mean_weights(config))
            if transfer is not None:
                summary["calibration_transfer"] = transfer
        summary["metric"] = metric
        store.finish_validation(validation.id, summary=summary)
        return summary
    except BaseException as error:
        reason = "interrupted" if isinstance(error, KeyboardInterrupt) else f"{type(error).__name__}: {error}"
        store.fail_validation(validation.id, reason)
        raise


def summarise(planned: Sequence[_Planned], proxy: Sequence[Scores], real: Mapping[tuple[int, int], Scores],
              names: list[str], plan: ValidationPlan, *, weights: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Fidelity on the held-out mixtures (real = the mean of their runs), the test–retest ceiling,
    per-set rows for the reference protocol, a calibration judged on mixtures it was not fitted on,
    and the search's picks apart. Every mean over benchmarks is the one the search maximised:
    weighted by ``weights`` where its objective weights them."""
    held = [i for i, p in enumerate(planned) if p.group != "pick"]
    runs = plan.repeats

    def columns(indices: Sequence[int], scores: Callable[[int], Scores]) -> dict[str, list[float]]:
        return {b: [float(scores(i)[b]) for i in indices] for b in names}

    def run_mean(i: int) -> Scores:
        return {b: float(np.mean([real[i, r][b] for r in range(runs)])) for b in names}

    def mean(scores: Scores) -> float:
        return float(benchmark_mean({b: [scores[b]] for b in names}, names, weights)[0])

    summary = fidelity_summary(columns(held, lambda i: proxy[i]), columns(held, run_mean), weights)
    summary.update(protocol=plan.protocol, seed=plan.seed, repeats=runs, held_out=len(held),
                   mean_weights=dict(weights) if weights else None)
    if runs >= 2:
        retest = retest_agreement(columns(held, lambda i: real[i, 0]), columns(held, lambda i: real[i, 1]), weights)
        rho = retest["mean_score"]["spearman"]
        # A mean of `runs` runs is more reliable than one (Spearman–Brown); the ceiling is its square root.
        reliability = runs * rho / (1 + (runs - 1) * rho) if np.isfinite(rho) and rho > 0 else float("nan")
        retest["mean_score"]["ceiling_of_mean"] = float(np.sqrt(reliability)) if np.isfinite(reliability) else reliability
        summary["retest"] = retest
    if plan.protocol == "reference":
        summary["groups"] = {
            group: fidelity_summary(columns(members, lambda i: proxy[i]), columns(members, run_mean),
                                    weights)["mean_score"]
            for group in ("pairs", "triples", "simplex")
            if len(members := [i for i in held if planned[i].group == group]) >= 2
        }
    if len(held) >= MAX_FIT + 2:
        rng = np.random.default_rng([plan.seed, 0xCA1])
        fit = sorted(int(k) for k in rng.choice(len(held), size=MAX_FIT, replace=False))
        judged = judge(columns(held, lambda i: proxy[i]), columns(held, run_mean), fit=fit, weights=weights)
        judged["fit_on"] = [planned[held[k]].mixture.as_dict() for k in judged["fit_on"]]
        judged["judged_on"] = len(judged["judged_on"])
        summary["calibration"] = judged
    best_real = max(mean(run_mean(i)) for i in held)
    summary["search_picks"] = [
        {"trial": p.trial_number, "weights": p.mixture.as_dict(), "proxy": mean(proxy[i]), "real": mean(real[i, 0]),
         "best_held_out_real": best_real}
        for i, p in enumerate(planned) if p.group == "pick"
    ]
    return summary


def judge_earlier_calibration(earlier: Sequence[ValidationRecord], planned: Sequence[_Planned], proxy: Sequence[Scores],
                              real: Mapping[tuple[int, int], Scores], names: list[str], plan: ValidationPlan, *,
                              domains: Sequence[str], weights: Mapping[str, float] | None = None,
                              ) -> dict[str, Any] | None:
    """The calibration ``dmo best --calibrated`` would apply, fitted on every held-out mixture of the
    search's earlier validations pooled, judged on this validation's held-out mixtures that it was not
    fitted on: the honest test of that command. Beside it, under ``mixture_law``, the no-proxy baseline
    fitted on the same mixtures (None where they are too few). None where fewer than two mixtures are
    left to judge on."""
    try:
        pooled = fit_on_validations(earlier)
    except ValueError:
        return None
    judged = [i for i, p in enumerate(planned)
              if p.group != "pick" and mixture_key(p.mixture.as_dict()) not in pooled.mixtures]
    if len(judged) < 2:
        return None
    runs = plan.repeats
    proxy_columns = {b: [float(proxy[i][b]) for i in judged] for b in names}
    real_columns = {b: [float(np.mean([real[i, r][b] for r in range(runs)])) for i in judged] for b in names}
    result = judge_fitted(pooled.calibration, proxy_columns, real_columns, weights=weights, pooled=pooled)
    # What the same trained mixtures predict with no proxy at all: what `dmo best --calibrated` ranks by
    # where it can be fitted, since it ranked held-out draws better than the calibrated proxies (docs/fidelity.md).
    mixtures = [planned[i].mixture.as_dict() for i in judged]
    law = judge_mixture_law(earlier, mixtures, real_columns, domains=domains, weights=weights)
    # The mean of both predictions, which `dmo best --calibrated` ranked by before the law; still reported.
    blend = judge_blend(pooled, earlier, mixtures, proxy_columns, real_columns, domains=domains, weights=weights)
    result.update(fitted_on_validations=list(pooled.validation_ids), fitted_on=len(pooled.mixtures),
                  judged_on=len(judged), mixture_law=law, blend=blend)
    return result


def _real_scores(config: DmoConfig, model: ModelRecord, metric: str) -> dict[str, float]:
    """Scores of a trained mixture model on the benchmarks the proxies saw (its recorded dev scores when
    those are the domains' dev splits)."""
    dev = (model.metrics or {}).get("dev")
    if dev and metric != "benchmark":
        return {b: float(s[metric]) for b, s in dev["benchmarks"].items()}
    from dmo.data.domains import load_benchmarks
    from dmo.data.prepared import prepare_data

    data = prepare_data(config)
    data.add_benchmarks(load_benchmarks(config, ("search",), data.domains))
    backend = backend_for(config)
    result = evaluate(backend.load(Path(model.checkpoint_uri)), data, search_benchmarks(config),
                      backend=backend,
                      max_new_tokens=config.evaluation.max_new_tokens, batch_size=config.evaluation.batch_size,
                      limit=config.evaluation.dev_limit)
    return result.scores(metric)


def summary_rows(summary: dict) -> Sequence[tuple[str, dict]]:
    return [("mean score", summary["mean_score"]), *summary["per_benchmark"].items()]
