"""Fidelity and the cost of a DMO decision, read from the demo project's store.

Ranking M mixtures with proxies costs K expert trainings (paid once, reused by
every later search) plus M proxy evaluations; ranking them for real costs M
mixture-model trainings. `dmo validate` does both for the same M mixtures, on
the same machine and the same Ray worker settings, so the two sides are
measured side by side; this script reads their stored durations and the
fidelity the validation measured.

    python bench/decision_cost.py [--config configs/demo.yaml] [--mixtures 10] [--json]

Runs `dmo demo` and `dmo validate SEARCH --mixtures M` first when the store
has no finished search or no validation with at least M mixtures (about
10–15 min on 2 cores); `--no-run` only reads.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from harness import emit

from dmo.config import DmoConfig, load_config
from dmo.search.searches import search_config
from storage import Store

# A search belongs to this config when it trained and scored the same way (other
# configs, such as the fidelity levers in configs/fidelity/, may share the store).
SAME_SETUP = ("model", "training", "evaluation")


def latest_search(store: Store, config: DmoConfig):
    wanted = config.model_dump(mode="json")
    finished = [s for s in store.list_searches() if s.status == "finished"
                and all(search_config(s).model_dump(mode="json")[key] == wanted[key] for key in SAME_SETUP)]
    return max(finished, key=lambda s: s.id) if finished else None


def validation_of(store: Store, search_id: int, mixtures: int):
    validation = store.latest_validation(search_id, finished_only=True)
    return validation if validation is not None and len(validation.results) >= mixtures else None


def ensure_validated(config_path: Path, store: Store, mixtures: int, run: bool):
    dmo = [sys.executable, "-m", "dmo"]
    config = load_config(config_path)
    search = latest_search(store, config)
    if search is None and run:
        subprocess.run([*dmo, "demo", "-c", str(config_path)], check=True)
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


def measure(store: Store, search, validation) -> dict:
    experts = [store.get_model(model_id) for model_id in search.expert_ids]
    trials = [t for t in store.trials(search.id) if t.duration_s is not None]
    mixture_models = [store.get_model(r.model_id) for r in validation.results if r.model_id is not None]
    m = len(validation.results)
    proxy_s = statistics.median(t.duration_s for t in trials)
    expert_s = sum(e.duration_s or 0.0 for e in experts)
    mixture_s = [model.duration_s or 0.0 for model in mixture_models]
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
    lines = [
        f"search {r['search_id']}, validation {r['validation_id']}: K = {r['K']} experts, M = {r['M']} mixtures",
        "",
        "| route | what it trains / evaluates | wall time (task-seconds) |",
        "|---|---|---:|",
        f"| proxies | {r['K']} experts ({r['expert_train_s']:.0f} s) + {r['M']} proxies "
        f"({r['proxy_eval_s']:.1f} s each) | {r['proxies_route_s']:.0f} s |",
        f"| real | {r['M']} mixture models ({r['mixture_train_s_mean']:.0f} s each) | {r['real_route_s']:.0f} s |",
        "",
        f"proxies are {r['speedup']:.1f}× cheaper for M = {r['M']}; they break even at "
        f"{r['break_even_mixtures']:.1f} mixtures, and the search itself ranked {r['search_trials']} "
        f"mixtures in {r['search_proxy_s']:.0f} task-seconds.",
        "",
        f"fidelity (mean score): Spearman {f['spearman']:.3f}, Kendall {f['kendall']:.3f}, "
        f"top-1 regret {f['regret']:.2f} points, proxy's pick in real top-3: {f['in_top_3']}",
    ]
    for b, row in f["per_benchmark"].items():
        lines.append(f"- {b}: Spearman {row['spearman']:.3f}, Kendall {row['kendall']:.3f}, regret {row['regret']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    parser.add_argument("--mixtures", type=int, default=10)
    parser.add_argument("--no-run", action="store_true", help="only read the store, never train")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    with Store.open(config.project.resolved_store_url()) as store:
        search, validation = ensure_validated(args.config, store, args.mixtures, run=not args.no_run)
        report = measure(store, search, validation)
    return emit(report, args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
