"""Would a concave map from mixture weights to merge coefficients rank held-out mixtures better?

    python bench/weight_map.py --fit VALIDATION --judge VALIDATION [--judge ...] [--alphas 0.75,0.5,0.3] [--json]

Mechanism 1 of docs/fidelity.md: a model trained on 25 % counting data solves counting, while a
task-arithmetic proxy at the same w carries a quarter of the counting task vector and does not.
A proxy built with coefficients ``c_i = w_i^α / Σ_j w_j^α`` (``search.merge.weight_power``) (α < 1, still summing to 1) gives a
small share more of its task vector and a large share less, the way data mixing saturates. α = 1 is
the plain task arithmetic every search uses today.

For each α this rebuilds the proxies of the validations' held-out mixtures (the search's own base,
experts, merge method and benchmarks; nothing is trained) and scores them against the stored real
scores: mean-score ρ with its 90 % interval, τ, top-1 regret, per-benchmark ρ, and the calibrated
transfer (the isotonic map `dmo best --calibrated` would fit on the --fit validation's pairs at that
α, judged on each --judge validation). α is chosen on --fit only; the --judge rows are the honest
figures. α = 1 is always in the table, from the proxy scores the validations stored.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

import numpy as np
from harness import emit

from dmo.config import load_config
from dmo.fidelity.calibration import Calibration, held_out_columns, judge_fitted
from dmo.fidelity.ranking import benchmark_mean, fidelity_summary, spearman_interval
from dmo.mixture import merge_coefficients
from dmo.search.objectives import mean_weights
from dmo.search.proxy import ProxyEvaluator
from dmo.search.searches import proxy_source
from storage import Store


def fidelity_row(proxy: Mapping[str, Sequence[float]], real: Mapping[str, Sequence[float]], names: list[str],
                 weights: Mapping[str, float] | None) -> dict:
    """`dmo validate`'s own figures (dmo.fidelity.ranking.fidelity_summary) with the mean score's 90 % interval."""
    summary = fidelity_summary({b: proxy[b] for b in names}, {b: real[b] for b in names}, weights)
    mean = summary["mean_score"]
    interval = spearman_interval(benchmark_mean(proxy, names, weights), benchmark_mean(real, names, weights))
    return {"spearman": mean["spearman"], "spearman_90": list(interval), "kendall": mean["kendall"],
            "regret": mean["regret"], "per_benchmark": {b: row["spearman"] for b, row in summary["per_benchmark"].items()}}


def num(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def fidelity_cells(row: Mapping) -> str:
    """A fidelity_row as table cells: mean-score ρ (90 %) | τ | regret | per-benchmark ρ."""
    low, high = row["spearman_90"]
    per = ", ".join(f"{b} {num(r)}" for b, r in row["per_benchmark"].items())
    return f"{num(row['spearman'])} ({num(low)} … {num(high)}) | {num(row['kendall'])} | {num(row['regret'])} | {per}"


def judge_alphas(proxies: Mapping[float, Mapping[int, Mapping[str, Sequence[float]]]],
                 real: Mapping[int, Mapping[str, Sequence[float]]], fit: int, names: list[str],
                 weights: Mapping[str, float] | None) -> tuple[dict, float]:
    """Each α's fidelity row per validation, and the α chosen by mean-score ρ on validation ``fit`` alone.
    The other validations also get the calibration fitted on ``fit``'s pairs at that α, judged on them."""
    rows = {}
    for alpha, by_validation in proxies.items():
        calibration = Calibration.fit(by_validation[fit], real[fit])
        rows[str(alpha)] = {
            str(i): {**fidelity_row(scores, real[i], names, weights),
                     **({"calibrated_from_fit": judge_fitted(calibration, scores, real[i], weights=weights)["calibrated"]}
                        if i != fit else {})}
            for i, scores in by_validation.items()
        }
    chosen = max(proxies, key=lambda a: rows[str(a)][str(fit)]["spearman"])
    return rows, chosen


def measure(config_path: str, fit: int, judge: Sequence[int], alphas: Sequence[float]) -> dict:
    config = load_config(config_path)
    store = Store.open_existing(config.project.resolved_store_url())
    try:
        validations = {i: store.get_validation(i) for i in (fit, *judge)}
        searches = {v.search_id for v in validations.values()}
        if len(searches) != 1:
            raise SystemExit(f"validations {sorted(validations)} belong to searches {sorted(searches)}: pick one search's")
        search = store.get_search(searches.pop())
        source = proxy_source(store, search)
    finally:
        store.dispose()
    evaluator = ProxyEvaluator(source)
    metric = search.metric
    domains = search.config.domain_names
    weights = mean_weights(search.config)
    columns = {i: held_out_columns(v.results) for i, v in validations.items()}
    names = [b for b in search.benchmarks if b in columns[fit][1]]
    # α = 1 is what the validation scored: its stored proxy scores, not a second build of the same proxies.
    proxies: dict[float, dict[int, dict[str, list[float]]]] = {
        1.0: {i: {b: list(stored[b]) for b in names} for i, (_, stored, _) in columns.items()}}
    rebuilt = [a for a in alphas if a != 1.0]
    total = len(rebuilt) * sum(len(mixtures) for mixtures, _, _ in columns.values())
    done = 0
    for alpha in rebuilt:
        proxies[alpha] = {}
        for i, (mixtures, _, _) in columns.items():
            scores: dict[str, list[float]] = {b: [] for b in names}
            for mixture in mixtures:
                result = evaluator.evaluate(merge_coefficients([mixture[d] for d in domains], alpha)).scores[metric]
                for b in names:
                    scores[b].append(float(result[b]))
                done += 1
                print(f"\r{done}/{total} proxies", end="", file=sys.stderr, flush=True)
            proxies[alpha][i] = scores
    print(file=sys.stderr)
    rows, chosen = judge_alphas(proxies, {i: real for i, (_, _, real) in columns.items()}, fit, names, weights)
    return {"search": search.id, "fit": fit, "judge": list(judge),
            "seeds": {str(i): v.summary.get("seed") for i, v in validations.items()},
            "alphas": sorted(proxies, reverse=True), "chosen_on_fit": chosen, "rows": rows}


def markdown(report: dict) -> str:
    heading = (f"search {report['search']}: α chosen on validation {report['fit']} (seed {report['seeds'][str(report['fit'])]}) "
             f"by mean-score ρ: **{report['chosen_on_fit']}**; judged on {report['judge']}")
    lines = [heading, "",
             "| α | validation (seed) | mean-score ρ (90 %) | τ | regret | per-benchmark ρ | calibrated from fit: ρ (90 %), regret |",
             "|---|---|---|---:|---:|---|---|"]
    for alpha, by_validation in report["rows"].items():
        for i, row in by_validation.items():
            cal = row.get("calibrated_from_fit")
            cal_text = "" if cal is None else (f"{num(cal['spearman'])} ({num(cal['spearman_90'][0])} … "
                                               f"{num(cal['spearman_90'][1])}), {num(cal['regret'])}")
            role = "fit" if int(i) == report["fit"] else "judge"
            lines.append(f"| {alpha} | {i} ({report['seeds'][i]}, {role}) | {fidelity_cells(row)} | {cal_text} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="picks the store")
    parser.add_argument("--fit", type=int, required=True, help="the validation α is chosen on")
    parser.add_argument("--judge", type=int, action="append", required=True, help="a validation it is judged on")
    parser.add_argument("--alphas", default="0.75,0.5,0.3", help="comma-separated exponents besides 1")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    alphas = [float(a) for a in args.alphas.split(",")]
    return emit(measure(args.config, args.fit, args.judge, alphas), args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
