"""A search from start to end, over the store: create it, run or resume it, record its trials.

The one path a search takes (see docs/architecture.md): the CLI trains or
finds the experts, :func:`create_search` stores the typed snapshot and opens
the Optuna study, :func:`run_search` drives it over an evaluator pool (local,
or Ray actors from ``workers``) and records every trial through
:class:`StoreJournal`. Nothing here imports Ray.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dmo.config.schema import DmoConfig
from dmo.config.snapshot import SearchSnapshot
from dmo.errors import SearchError, StoreError
from dmo.search.driver import SearchOutcome, SearchPlan, SearchProgress, TrialOutcome, drive
from dmo.search.pool import EvaluatorPool, ProxySource
from dmo.search.study import RecordedResult, new_study_name, open_study, settle_stale_trials
from dmo.search.subset_scoring import rescore, select_anchors
from dmo.search.surrogate import predict_optimum
from storage import ModelRecord, SearchRecord, Store

logger = logging.getLogger(__name__)


def create_search(
    store: Store, config: DmoConfig, *, base: ModelRecord | None, experts: dict[str, ModelRecord]
) -> SearchRecord:
    """A new search of ``config`` (command-line overrides already applied) and its Optuna study."""
    missing = [d for d in config.domain_names if d not in experts]
    if missing:
        raise SearchError(f"no finished expert for domain(s) {', '.join(missing)}", hint="train the experts first")
    study_name = new_study_name(config.project.name)
    open_study(store.url, study_name, config)
    snapshot = SearchSnapshot(config=config, base_id=None if base is None else base.id)
    return store.create_search(snapshot, study_name=study_name,
                               expert_ids=[experts[d].id for d in config.domain_names])


def run_search(
    store: Store,
    search: SearchRecord,
    pool: EvaluatorPool,
    *,
    on_progress: Callable[[SearchProgress], None] | None = None,
    stale_wait_s: float | None = None,
) -> SearchOutcome:
    """Run (or resume) ``search`` until it has its number of finished trials."""
    config = search.config
    study = open_study(store.url, search.study_name, config)
    journal = StoreJournal(store, search)
    # A dead driver's trials turn stale after 2 heartbeats (the grace period); wait twice that.
    wait_s = 4 * config.search.heartbeat_s if stale_wait_s is None else stale_wait_s

    def recorded() -> dict[int, RecordedResult]:
        return {t.number: RecordedResult(t.state, t.objective)
                for t in store.trials(search.id, state=None) if t.state != "running"}

    journal.close_abandoned(settle_stale_trials(study, recorded, wait_s=wait_s))
    store.set_search_status(search.id, "running")
    try:
        plan = SearchPlan.of(config, anchors=_anchors(store, search, pool))
        result = drive(study, pool, plan, journal, on_progress=on_progress)
    except KeyboardInterrupt:
        store.set_search_status(search.id, "interrupted", error="interrupted by the user")
        raise
    except SearchError as failure:  # e.g. scoring the reference models for the anchors failed
        store.set_search_status(search.id, "failed", error=failure.render()[:500])
        raise
    done = result.completed + result.pruned
    note = None
    if result.exhausted and done < search.trials_target:
        note = f"the {config.search.sampler} sampler has only {done} distinct points; stopped there"
    if done >= search.trials_target or (result.exhausted and result.completed):
        status, error = "finished", None
    else:
        status, error = "failed", f"{result.failed} trials failed"
    if status == "finished" and plan.anchors is not None:
        try:
            _rescore_best(store, search, pool, plan)
        except SearchError as failure:  # the trials stand; best_trials ranks the unrescored ones by anchor value
            error = f"the best trials were not rescored in full: {failure.render()}"[:500]
            logger.warning("search %s: %s", search.id, error)
    store.set_search_status(search.id, status, error=error)
    if status == "finished":
        try:  # a prediction is extra: failing to store one must not fail a finished search
            store.set_search_prediction(search.id, predicted_optimum(store, search))
        except (StoreError, np.linalg.LinAlgError, ValueError) as failure:
            logger.warning("search %s: no predicted optimum stored (%s)", search.id, failure)
    return SearchOutcome(search.id, result.completed, result.pruned, result.failed, status, note)


def _anchors(store: Store, search: SearchRecord, pool: EvaluatorPool) -> dict[str, tuple[int, ...]] | None:
    """The search's anchor subset: the stored one, else (first run) chosen now and stored; None where
    the search scores every sample."""
    settings = search.config.search.anchors
    if settings is None:
        return None
    if search.anchors is not None:
        return dict(search.anchors)
    source = proxy_source(store, search)
    anchors = select_anchors(pool, source.base_checkpoint, source.expert_checkpoints, rule=settings.rule,
                             fraction=settings.fraction, seed=search.config.search.seed)
    if not anchors:  # no benchmark dmo scores sample by sample (lmms-eval tasks only): nothing to subset
        return None
    store.set_search_anchors(search.id, anchors)
    return anchors


def _rescore_best(store: Store, search: SearchRecord, pool: EvaluatorPool, plan: SearchPlan) -> None:
    """Score the best ``rescore_top`` trials by their anchor value again on every sample (those not yet
    rescored: a resumed search does not pay twice)."""
    settings = search.config.search.anchors
    assert settings is not None
    sign = -1.0 if search.direction == "maximize" else 1.0
    ranked = sorted((t for t in store.trials(search.id) if t.value is not None), key=lambda t: (sign * t.value, t.number))
    todo = [t for t in ranked[: settings.rescore_top] if t.full_value is None]
    rescored = rescore(pool, [[t.weights[d] for d in search.domains] for t in todo], plan)
    for trial, (value, scores) in zip(todo, rescored, strict=True):
        store.set_trial_full(search.id, trial.number, value=value, scores=scores)


def predicted_optimum(store: Store, search: SearchRecord) -> dict[str, Any] | None:
    """The surrogate's argmax over the search's complete trials, computed once when the search ends;
    None for a multi-objective search (no single optimum) or too few trials to fit."""
    if search.config.search.objective.kind == "multi":
        return None
    trials = store.trials(search.id, state="complete")
    prediction = predict_optimum(search.domains, [[t.weights[d] for d in search.domains] for t in trials],
                                 [np.nan if t.value is None else t.value for t in trials],
                                 seed=search.config.project.seed)
    return None if prediction is None else prediction.as_dict()


class StoreJournal:
    """Records a search's trials in the store: one row per trial number, written idempotently."""

    def __init__(self, store: Store, search: SearchRecord):
        self.store, self.search = store, search
        self.merge = search.config.search.merge

    def record(self, outcome: TrialOutcome) -> None:
        result = outcome.result
        if result is not None:
            efficiency = {"merge_seconds": result.merge_seconds, "eval_seconds": result.eval_seconds,
                          "samples": result.samples, "scores_by_metric": result.scores}
        else:
            efficiency = {"error": outcome.error} if outcome.error else None
        self.store.record_trial(
            search_id=self.search.id, number=outcome.number, mixture=outcome.mixture,
            merge_method=self.merge.method, params=dict(self.merge.params),
            scores={} if result is None else result.scores[self.search.metric],
            objective=list(outcome.objective), state=outcome.state, duration_s=outcome.seconds,
            routing=None if result is None else result.routing, efficiency=efficiency,
        )

    def close_abandoned(self, failed_numbers: list[int]) -> None:
        """Rows a dead driver left ``running`` whose Optuna trials are now failed (and retried)."""
        failed = set(failed_numbers)
        for row in self.store.trials(self.search.id, state="running"):
            if row.number in failed:
                self.record(TrialOutcome(row.number, row.mixture, "fail", error="driver died; trial retried"))


def proxy_source(store: Store, search: SearchRecord, *, threads: int = 1) -> ProxySource:
    """Where a search's proxies come from: its base and experts, checked finished."""
    if search.snapshot.base_id is None:
        raise SearchError(f"search {search.id} has no base model", hint="it was created without experts")
    base = store.get_model(search.snapshot.base_id)
    experts = [store.get_model(i) for i in search.expert_ids]
    for record in (base, *experts):
        if record.status != "finished" or not record.checkpoint_uri:
            raise SearchError(f"model {record.id} ({record.kind} {record.domain or ''}) is not finished")
    return ProxySource(
        config=search.config,
        base_checkpoint=Path(base.checkpoint_uri),
        expert_checkpoints=tuple(Path(e.checkpoint_uri) for e in experts),
        threads=threads,
    )
