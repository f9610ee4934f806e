"""Search page: progress, the mixtures tried, the best mixtures per benchmark, proxy fidelity
and, for multi-objective searches, the Pareto front. ``?search=ID`` picks the search."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboards import charts, view
from dashboards import frames as fr
from storage import SearchRecord, Store, TrialRecord

TOP_DEFAULT = 10


def main() -> None:
    view.setup_page("Search")
    st.title("Search")
    store = view.open_store()
    if store is None:
        return
    searches = store.list_searches()
    if not searches:
        st.info("No searches in this store yet. Start one with `dmo search run CONFIG`.")
        return
    search = view.pick_search(searches)
    trials = store.trials(search.id, state=None)
    _header(search, trials)
    _status_notes(search, trials)
    complete = [t for t in trials if t.state == "complete" and t.value is not None]
    if not complete:
        st.info(
            f"Search {search.id} has no complete trial yet"
            + (": reload to follow it." if search.status in ("created", "running") else ".")
        )
    else:
        _progress_and_mixtures(search, complete)
        _top_mixtures(store, search, len(complete))
        if fr.is_multi_objective(search):
            _pareto(search, complete)
    _fidelity(store, search)
    _experts(store, search)


def _header(search: SearchRecord, trials: list[TrialRecord]) -> None:
    st.subheader(f"{search.id} · {search.name}")
    st.caption(
        f"sampler {search.sampler} · objective {fr.objective_label(search)} · "
        f"domains {', '.join(search.domains)} · Optuna study `{search.study_name}` · "
        f"created {search.created_at:%Y-%m-%d %H:%M}, updated {search.updated_at:%Y-%m-%d %H:%M}"
    )
    complete = [t for t in trials if t.state == "complete" and t.value is not None]
    pick = max if search.direction == "maximize" else min
    best = pick(complete, key=lambda t: float(t.value or 0.0)) if complete else None
    columns = st.columns(4)
    columns[0].metric("status", search.status)
    columns[1].metric("complete / all trials", f"{len(complete)} / {len(trials)}")
    columns[2].metric("best objective", "-" if best is None else f"{best.value:.2f}")
    columns[3].metric("best trial", "-" if best is None else str(best.number))


def _status_notes(search: SearchRecord, trials: list[TrialRecord]) -> None:
    if search.status in ("created", "running"):
        running = sum(t.state == "running" for t in trials)
        st.info(
            f"Search {search.id} is still {search.status}: {running} trial(s) in flight. "
            "Reload the page to see new trials."
        )
    elif search.status in ("failed", "interrupted"):
        st.warning(f"Search {search.id} {search.status}: {search.error or 'no error recorded'}")
    failed = fr.failed_trials_frame(trials)
    if len(failed):
        numbers = ", ".join(str(n) for n in failed["trial"])
        st.warning(
            f"{len(failed)} trial(s) failed (trial {numbers}); they have no score. "
            f"First error: {failed['error'].iloc[0]}"
        )
        with st.expander("failed trials"):
            st.dataframe(failed, hide_index=True)


def _progress_and_mixtures(search: SearchRecord, complete: list[TrialRecord]) -> None:
    left, right = st.columns(2)
    left.plotly_chart(
        charts.progress_chart(fr.progress_frame(complete, search.direction)), key="progress"
    )
    names = fr.objective_names(search)
    frame = fr.trials_frame(complete, search.domains, names)
    value = fr.objective_columns(names)[0]
    right.plotly_chart(charts.mixtures_chart(frame, search.domains, value), key="mixtures")


def _top_mixtures(store: Store, search: SearchRecord, complete: int) -> None:
    st.subheader("Top mixtures")
    top = TOP_DEFAULT
    if complete > 1:
        top = st.slider("how many", 1, min(complete, 50), min(TOP_DEFAULT, complete), key="top")
    ranked = store.best_trials(search.id, top_k=top)
    if search.metric == "benchmark":  # declared benchmarks, each scored by its own metric
        scored = ", ".join(f"{name}: {metric}" for name, metric in search.benchmark_metrics.items())
        st.caption(f"Per-benchmark scores ({scored}), best first ({search.direction}).")
    else:
        st.caption(f"Per-benchmark dev scores ({search.metric}), best first ({search.direction}).")
    _table(fr.top_mixtures_frame(ranked, search.domains, fr.objective_names(search)))


def _pareto(search: SearchRecord, complete: list[TrialRecord]) -> None:
    st.subheader("Pareto front")
    names = fr.objective_names(search)
    frame = fr.pareto_frame(complete, search.domains, names)
    if frame.empty:
        st.info("No complete trial has every objective value yet.")
        return
    st.plotly_chart(charts.pareto_chart(frame, names), key="pareto")
    _table(frame[frame["on front"]].drop(columns=["on front", "state", "error"]))


def _fidelity(store: Store, search: SearchRecord) -> None:
    st.subheader("Proxy vs real")
    validation = store.latest_validation(search.id)
    if validation is None:
        st.info(
            f"Search {search.id} is not validated yet: `dmo validate {search.id} --mixtures M` "
            "trains M mixture models and compares them with their proxies."
        )
        return
    if validation.status == "failed":
        st.warning(f"Validation {validation.id} failed: {validation.error or 'no error recorded'}")
    elif validation.status == "running":
        st.info(
            f"Validation {validation.id} is still running "
            f"({len(validation.results)} mixture(s) scored so far)."
        )
    if not validation.results:
        return
    frame = fr.validation_frame(validation, search.domains)
    benchmark = st.selectbox("benchmark", fr.validation_benchmarks(frame), key="fidelity_benchmark")
    result = fr.fidelity(frame, benchmark)
    left, right = st.columns([3, 1])
    left.plotly_chart(charts.fidelity_chart(result, benchmark), key="fidelity")
    right.metric("Spearman ρ", "undefined" if math.isnan(result.rho) else f"{result.rho:.2f}")
    right.metric("mixtures", str(len(result.points)))
    if result.dropped:
        right.caption(f"{result.dropped} mixture(s) without a score on both sides are left out.")
    stored = validation.summary.get("mean_score", {}) if validation.summary else {}
    if stored.get("regret") is not None:
        right.metric("top-1 regret", f"{stored['regret']:.2f}")
    with st.expander("mixture results"):
        _table(frame)


def _table(frame: pd.DataFrame) -> None:
    """A table with weights to 3 decimals and scores to 2."""
    formats = {
        column: st.column_config.NumberColumn(format="%.3f" if column.startswith("w ") else "%.2f")
        for column in frame.columns
        if frame[column].dtype.kind == "f"
    }
    st.dataframe(frame, hide_index=True, column_config=formats)


def _experts(store: Store, search: SearchRecord) -> None:
    st.subheader("Experts merged by this search")
    models = [store.get_model(i) for i in search.expert_ids]
    st.dataframe(fr.models_frame(models).drop(columns=["error"]), hide_index=True)
    st.caption("Training curves and efficiency settings are on the Experts page.")


main()
