"""Fidelity and the cost of a DMO decision, read from the demo project's store.

Ranking M mixtures with proxies costs K expert trainings (paid once, reused by
every later search) plus M proxy evaluations; ranking them for real costs M
mixture-model trainings. This script measures both routes side by side in
one run, one thread each as a Ray worker has: it trains one expert and one
mixture model afresh from the stored base (same budget and schedule as the
stored ones) and builds and scores a proxy for each of the validation's M
mixtures. It also reads the durations that `dmo demo` and `dmo validate`
stored, as a cross-check, and the fidelity the validation measured.

    python bench/decision_cost.py [--config configs/demo.yaml] [--mixtures 10] [--no-measure] [--json]

Runs `dmo demo` and `dmo validate SEARCH --mixtures M` first when the store
has no finished search or no validation with at least M mixtures (about
10–15 min on 2 cores); `--no-run` only reads.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import emit

from dmo.config import DmoConfig, load_config
from dmo.data.prepared import prepare_data
from dmo.evaluation.scoring import sample_counts
from dmo.mixture import Mixture
from dmo.models.backends import backend_for
from dmo.search.anchors import random_anchors
from dmo.search.pool import ProxySource
from dmo.search.proxy import ProxyEvaluator
from dmo.training.jobs import expert_spec, initial_model, mixture_spec, training_run
from dmo.training.loop import train
from storage import Store

ANCHOR_FRACTION = 0.25  # search.anchors' default
RESCORED = 5  # search.anchors.rescore_top's default

# A search belongs to this config when it trained, merged and scored the same way (other
# configs, such as the fidelity levers in configs/fidelity/, may share the store).
SAME_SETUP = ("model", "training", "evaluation")


def _setup(config: DmoConfig) -> dict:
    dumped = config.model_dump(mode="json")
    return {**{key: dumped[key] for key in SAME_SETUP}, "merge": dumped["search"]["merge"]}


def latest_search(store: Store, config: DmoConfig):
    wanted = _setup(config)
    finished = [s for s in store.list_searches() if s.status == "finished" and _setup(s.config) == wanted]
    return max(finished, key=lambda s: s.id) if finished else None


def validation_of(store: Store, search_id: int, mixtures: int):
    validation = store.latest_validation(search_id, finished_only=True)
    return validation if validation is not None and len(validation.results) >= mixtures else None


def ensure_validated(config_path: Path, store: Store, mixtures: int, run: bool):
    dmo = [sys.executable, "-m", "dmo"]
    config = load_config(config_path)
    search = latest_search(store, config)
    if search is None and run:
        subprocess.run([*dmo, "demo", "-c", str(config_path)], check=True, stdout=sys.stderr)
        search = latest_search(store, config)
    if search is None:
        raise SystemExit(f"no finished search in the store of {config_path}: run `make demo` first")
    validation = validation_of(store, search.id, mixtures)
    if validation is None and run:
        subprocess.run([*dmo, "validate", str(search.id), "-c", str(config_path), "--mixtures", str(mixtures)],
                       check=True, stdout=subprocess.DEVNULL)
        validation = validation_of(store, search.id, mixtures)
    if validation is None:
        raise SystemExit(f"search {search.id} has no finished validation with {mixtures} mixtures")
    return search, validation


def measure_now(config_path: Path, store: Store, search, validation) -> dict:
    """Both routes timed in this run: one expert, one mixture model, M proxies (`training.threads` each)."""
    config = load_config(config_path)
    data = prepare_data(config)
    experts = [store.get_model(model_id) for model_id in search.expert_ids]
    base = store.get_model(experts[0].base_id)
    base_dir = Path(base.checkpoint_uri)
    mixtures = [Mixture.of(data.names, r.weights) for r in validation.results]
    # The same runs `ensure_model` would make, into a scratch directory instead of the store.
    runs = {
        "expert": training_run(config, expert_spec(config, data.names[0]), base.checkpoint_sha256),
        "mixture": training_run(config, mixture_spec(mixtures[0]), base.checkpoint_sha256),
    }
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="dmo-bench-decision-") as scratch:
        for name, run in runs.items():
            result = train(run, initial_model(config, data, base_dir, seed=run.seed), data, Path(scratch) / name,
                           backend=backend_for(config))
            seconds[name] = result.seconds
    evaluator = ProxyEvaluator(ProxySource(config, base_dir, tuple(Path(e.checkpoint_uri) for e in experts)), data=data)
    proxy_times = []
    for mixture in mixtures:
        started = time.perf_counter()
        evaluator.evaluate(list(mixture.weights))
        proxy_times.append(time.perf_counter() - started)
    # The same proxies scored as a search with `search.anchors` (25 %, random) scores them: on the
    # anchors (drawn from the benchmark sizes alone), plus the top RESCORED trials again in full.
    anchors = random_anchors(sample_counts(data, evaluator.benchmarks), ANCHOR_FRACTION, config.search.seed)
    anchored_times = []
    for mixture in mixtures:
        started = time.perf_counter()
        evaluator.evaluate(list(mixture.weights), subsets=anchors)
        anchored_times.append(time.perf_counter() - started)
    k, m = len(experts), len(mixtures)
    proxy_s = statistics.median(proxy_times)
    anchored_s = statistics.median(anchored_times)
    proxies_route = k * seconds["expert"] + m * proxy_s
    real_route = m * seconds["mixture"]
    # Issue 20, item 4: at the search's own trial count, experts + proxies against that many trainings.
    trials = config.search.trials
    at_trials = trials * seconds["mixture"] / (k * seconds["expert"] + trials * proxy_s)
    anchored_route = k * seconds["expert"] + trials * anchored_s + RESCORED * proxy_s
    return {
        "anchored_proxy_s": anchored_s,
        "anchored_reference_scores": 0,  # random anchors come from the sizes; reports before 2026-12-03 scored the base once
        "anchored_share_of_training": anchored_s / seconds["mixture"],
        "speedup_at_search_trials_anchored": trials * seconds["mixture"] / anchored_route,
        "search_trials_configured": trials,
        "proxy_share_of_training": proxy_s / seconds["mixture"],
        "speedup_at_search_trials": at_trials,
        "bound_at_search_trials": trials * seconds["mixture"] / (k * seconds["expert"]),
        "expert_train_s": seconds["expert"],
        "mixture_train_s": seconds["mixture"],
        "proxy_eval_s": proxy_s,
        "proxies_route_s": proxies_route,
        "real_route_s": real_route,
        "speedup": real_route / proxies_route,
        "break_even_mixtures": k * seconds["expert"] / max(seconds["mixture"] - proxy_s, 1e-9),
    }


def measure(store: Store, search, validation) -> dict:
    experts = [store.get_model(model_id) for model_id in search.expert_ids]
    trials = [t for t in store.trials(search.id) if t.duration_s is not None]
    mixture_models = [store.get_model(r.model_id) for r in validation.results if r.model_id is not None]
    if len(mixture_models) != len(validation.results) or any(m.duration_s is None for m in [*experts, *mixture_models]):
        raise SystemExit(f"validation {validation.id}: a model has no stored duration; cannot cost the real route")
    m = len(validation.results)
    proxy_s = statistics.median(t.duration_s for t in trials)
    expert_s = sum(e.duration_s for e in experts)
    mixture_s = [model.duration_s for model in mixture_models]
    proxies_route = expert_s + m * proxy_s
    real_route = sum(mixture_s)
    mean_model_s = statistics.mean(mixture_s)
    summary = validation.summary["mean_score"]
    return {
        "search_id": search.id,
        "validation_id": validation.id,
        "K": len(experts),
        "M": m,
        "expert_train_s": expert_s,
        "proxy_eval_s": proxy_s,
        "mixture_train_s_mean": mean_model_s,
        "proxies_route_s": proxies_route,
        "real_route_s": real_route,
        "speedup": real_route / proxies_route,
        # Mixtures ranked by proxies before the experts have paid for themselves.
        "break_even_mixtures": expert_s / max(mean_model_s - proxy_s, 1e-9),
        "search_trials": len(trials),
        "search_proxy_s": sum(t.duration_s for t in trials),
        "fidelity": {
            "spearman": summary["spearman"],
            "kendall": summary["kendall"],
            "regret": summary["regret"],
            "in_top_3": summary["in_top_3"],
            "per_benchmark": {b: {k: row[k] for k in ("spearman", "kendall", "regret")}
                              for b, row in validation.summary["per_benchmark"].items()},
        },
    }


def markdown(r: dict) -> str:
    f = r["fidelity"]
    lines = [f"search {r['search_id']}, validation {r['validation_id']}: K = {r['K']} experts, M = {r['M']} mixtures", ""]
    now = r.get("measured")
    if now is not None:
        lines += [
            "Measured side by side in this run (one thread each, as one Ray worker):",
            "",
            "| route | what it trains / evaluates | wall time |",
            "|---|---|---:|",
            f"| proxies | {r['K']} experts ({now['expert_train_s']:.0f} s each) + {r['M']} proxies "
            f"({now['proxy_eval_s']:.1f} s each) | {now['proxies_route_s']:.0f} s |",
            f"| real | {r['M']} mixture models ({now['mixture_train_s']:.0f} s each) | {now['real_route_s']:.0f} s |",
            "",
            f"proxies are {now['speedup']:.1f}× cheaper for M = {r['M']} and break even at "
            f"{now['break_even_mixtures']:.1f} mixtures; every mixture ranked past that costs a proxy "
            f"({now['proxy_eval_s']:.1f} s) instead of a training run ({now['mixture_train_s']:.0f} s).",
            "",
            (f"One proxy costs {100 * now['proxy_share_of_training']:.1f} % of one mixture-model training (target "
             f"≤ 2 %: {'met' if now['proxy_share_of_training'] <= 0.02 else 'not met'}). At the search's own "
             f"{now['search_trials_configured']} trials and K = {r['K']}, experts + proxies are "
             f"{now['speedup_at_search_trials']:.1f}× cheaper than training the {now['search_trials_configured']} "
             f"mixture models (bound with free proxies {now['bound_at_search_trials']:.1f}×; target ≥ 8×: "
             f"{'met' if now['speedup_at_search_trials'] >= 8 else 'not met'})."),
            "",
        ]
    if now is not None and "anchored_proxy_s" in now:  # absent from reports written before 2026-12-03
        lines += [
            (f"With `search.anchors` (25 % of each benchmark, "
             f"{'random, drawn from the benchmark sizes;' if 'anchored_reference_scores' in now else 'random; the base scored in full once and'}"
             f" the top {RESCORED} trials rescored in full), a proxy costs {now['anchored_proxy_s']:.2f} s, "
             f"{100 * now['anchored_share_of_training']:.1f} % of a training (≤ 2 %: "
             f"{'met' if now['anchored_share_of_training'] <= 0.02 else 'not met'}), and the "
             f"{now['search_trials_configured']}-trial decision is {now['speedup_at_search_trials_anchored']:.1f}× "
             f"cheaper than training the mixtures (≥ 8×: "
             f"{'met' if now['speedup_at_search_trials_anchored'] >= 8 else 'not met'}); what anchors cost in "
             "ranking quality is section 9."),
            "",
        ]
    lines += [
        "Cross-check, from the durations `dmo demo` and `dmo validate` stored (task-seconds, two Ray workers at once):",
        "",
        "| route | what it trains / evaluates | task-seconds |",
        "|---|---|---:|",
        f"| proxies | {r['K']} experts ({r['expert_train_s']:.0f} s) + {r['M']} proxies "
        f"({r['proxy_eval_s']:.1f} s each) | {r['proxies_route_s']:.0f} s |",
        f"| real | {r['M']} mixture models ({r['mixture_train_s_mean']:.0f} s each) | {r['real_route_s']:.0f} s |",
        "",
        f"stored: {r['speedup']:.1f}× cheaper, break-even at {r['break_even_mixtures']:.1f} mixtures; the search "
        f"itself ranked {r['search_trials']} mixtures in {r['search_proxy_s']:.0f} task-seconds.",
        "",
        f"fidelity (mean score): Spearman {f['spearman']:.3f}, Kendall {f['kendall']:.3f}, "
        f"top-1 regret {f['regret']:.2f} points, proxy's pick in real top-3: {f['in_top_3']}",
    ]
    for b, row in f["per_benchmark"].items():
        lines.append(f"- {b}: Spearman {_signed(row['spearman'])}, Kendall {_signed(row['kendall'])}, regret {row['regret']:.2f}")
    met = f["spearman"] is not None and f["spearman"] >= 0.8 and f["regret"] <= 1.0
    lines += ["", f"target: Spearman ρ ≥ 0.8 and top-1 regret ≤ 1 point → {'met' if met else 'NOT met'}"]
    return "\n".join(lines)


def _signed(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    parser.add_argument("--mixtures", type=int, default=10)
    parser.add_argument("--no-run", action="store_true", help="only read the store, never train (implies --no-measure)")
    parser.add_argument("--no-measure", action="store_true", help="skip the side-by-side timing; report stored durations only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    with Store.open(config.project.resolved_store_url()) as store:
        search, validation = ensure_validated(args.config, store, args.mixtures, run=not args.no_run)
        report = measure(store, search, validation)
        if not (args.no_run or args.no_measure):
            report["measured"] = measure_now(args.config, store, search, validation)
    return emit(report, args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
