"""Proxy evaluations each sampler needs to come within 0.5 points of the dense-grid best.

    python bench/search_efficiency.py [--config configs/demo.yaml] [--seeds 5] [--budget 40] [--dev-limit 50] [--json]

Uses the demo project's base and experts from its store, running `dmo demo`
first when they are missing. The reference is the best proxy of the full 1/8 grid (165 mixtures
for four domains); each sampler then runs `--budget` trials per seed through
the same in-process driver and evaluator, and we count the evaluations until
its best-so-far is within `--tolerance` points of the grid best (budget + 1
when it never gets there). Medians over seeds, side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from dmo.config import load_config, with_overrides
from dmo.config.snapshot import SearchSnapshot
from dmo.data.prepared import prepare_data
from dmo.runtime import quiet_optuna
from dmo.search.driver import SearchPlan
from dmo.search.grid import simplex_grid
from dmo.search.objectives import objective_values
from dmo.search.pool import LocalPool, ProxySource
from dmo.search.proxy import ProxyEvaluator
from dmo.search.searches import run_search
from dmo.search.study import new_study_name, open_study
from dmo.training.jobs import base_spec, cache_key, expert_spec
from storage import Store

SAMPLERS = ("tpe", "gp", "random", "grid")


def trained_experts(config_path: Path, config, data):
    """The demo's base and experts from its store; `dmo demo` trains them first on a fresh clone."""
    for attempt in range(2):
        with Store.open(config.project.resolved_store_url()) as store:
            base = store.find_model(cache_key(config, base_spec(config), data, None))
            experts = [] if base is None else [
                store.find_model(cache_key(config, expert_spec(config, d), data, base.checkpoint_sha256)) for d in config.domain_names]
        if base is not None and all(e is not None for e in experts):
            return base, experts
        if attempt == 0:
            subprocess.run([sys.executable, "-m", "dmo", "demo", "-c", str(config_path)], check=True, stdout=sys.stderr)
    raise SystemExit(f"no trained base and experts in the store of {config_path}, even after `dmo demo`")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--dev-limit", type=int, default=50, help="dev samples per benchmark per proxy")
    parser.add_argument("--tolerance", type=float, default=0.5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    quiet_optuna()
    config = with_overrides(load_config(args.config), {"evaluation.dev_limit": ("--dev-limit", args.dev_limit)})
    data = prepare_data(config)
    base, experts = trained_experts(args.config, config, data)
    evaluator = ProxyEvaluator(ProxySource(config, Path(base.checkpoint_uri), tuple(Path(e.checkpoint_uri) for e in experts)), data=data)

    plan = SearchPlan.of(config)  # the search's own objective: its declared benchmarks and their weights

    def score(weights) -> float:
        return objective_values(evaluator.evaluate(list(weights)).scores[plan.metric], plan.objective,
                                plan.benchmarks)[0]

    grid = simplex_grid(len(config.domain_names))
    grid_best = max(score(w) for w in grid)

    scratch = Store.open(f"sqlite:///{Path(tempfile.mkdtemp(prefix='dmo-bench-search-')) / 's.sqlite'}")
    results = {}
    for sampler in SAMPLERS:
        needed = []
        for seed in range(args.seeds):
            search_config = with_overrides(config, {"search.sampler": ("", sampler), "search.seed": ("", seed),
                                                    "search.trials": ("", args.budget), "search.warm_start": ("", [])})
            study = new_study_name("bench")
            open_study(scratch.url, study, search_config)
            search = scratch.create_search(SearchSnapshot(config=search_config, base_id=None), study_name=study,
                                           expert_ids=[])
            run_search(scratch, search, LocalPool(evaluator))
            trials = sorted(scratch.trials(search.id), key=lambda t: t.number)
            best, hit = float("-inf"), args.budget + 1
            for i, trial in enumerate(trials, start=1):
                best = max(best, trial.objective[0])
                if best >= grid_best - args.tolerance:
                    hit = i
                    break
            needed.append(hit)
        results[sampler] = {"median_evaluations": statistics.median(needed), "per_seed": needed}

    summary = {"grid_points": len(grid), "grid_best": grid_best, "tolerance": args.tolerance, "budget": args.budget,
               "dev_limit": args.dev_limit, "samplers": results,
               "tpe_vs_random": results["tpe"]["median_evaluations"] / results["random"]["median_evaluations"]}
    summary["seeds"] = args.seeds
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(markdown(summary))


def markdown(summary: dict) -> str:
    from dmo.config.schema import SearchSettings

    default = SearchSettings().sampler
    budget_plus_one = summary["budget"] + 1  # what a run that never got there counts
    random = summary["samplers"]["random"]["median_evaluations"]
    lines = [
        (f"dense 1/8 grid: {summary['grid_points']} proxies, best {summary['grid_best']:.2f}; "
        f"budget {summary['budget']} per run, {summary['seeds']} seeds, {summary['dev_limit']} dev samples per benchmark"),
        "",
        f"| sampler | median evaluations to within {summary['tolerance']:.1f} | vs random search | per seed |",
        "|---|---:|---:|---|",
    ]
    for sampler, row in summary["samplers"].items():
        name = f"{sampler} (default)" if sampler == default else sampler
        lines.append(f"| {name} | {row['median_evaluations']} | {row['median_evaluations'] / random:.2f}× | "
                     f"{row['per_seed']} |")
    ratio = summary["samplers"][default]["median_evaluations"] / random
    censored = " (random search's median is the budget + 1: it did not get there, so the true ratio is lower)" \
        if random >= budget_plus_one else ""
    verdict = "met" if ratio <= 0.5 else "NOT met"
    lines += ["", (f"The default sampler, {default}, needs {ratio:.2f}× the evaluations of random search{censored} "
              f"(target ≤ 0.5×) → {verdict}")]
    return "\n".join(lines)

if __name__ == "__main__":
    main()
