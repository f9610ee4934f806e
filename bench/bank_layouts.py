"""The same proxies from a factored and a dense bank: time per proxy, side by side, and whether they score alike.

    python bench/bank_layouts.py [--config configs/demo.yaml] [--search ID] [--draws 20] [--seed 15] [--json]

Builds one evaluator per layout (`search.merge.bank`: factored, dense) over the search's base and LoRA
experts (default: the newest search in the config's store, e.g. after `make demo`), then scores
`--draws` held-out Dirichlet(1) mixtures — the draws `dmo validate --seed S` takes — on every sample
of the search benchmarks with each, alternating layouts mixture by mixture so both see the same
machine. It prints the median seconds per proxy of each layout and their ratio, the largest score
difference on any benchmark, how many proxies' objectives differ, and the Spearman ρ between the two
layouts' objectives (1.0: a validation ranks them identically). One thread, like a search's evaluator.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import torch
from harness import emit

from dmo.config import load_config, with_overrides
from dmo.data.prepared import prepare_data
from dmo.fidelity.draws import held_out_draws
from dmo.fidelity.ranking import spearman
from dmo.search.driver import SearchPlan
from dmo.search.objectives import objective_values
from dmo.search.proxy import ProxyEvaluator
from dmo.search.searches import proxy_source
from storage import Store

LAYOUTS = ("factored", "dense")


def measure(config_path: str, search_id: int | None, draws: int, seed: int) -> dict:
    torch.set_num_threads(1)
    config = load_config(config_path)
    store = Store.open_existing(config.project.resolved_store_url())
    try:
        search = store.get_search(search_id) if search_id is not None else max(store.list_searches(),
                                                                                key=lambda s: s.id)
        source = proxy_source(store, search)
    finally:
        store.dispose()
    data = prepare_data(search.config)
    evaluators = {}
    for layout in LAYOUTS:
        configured = with_overrides(search.config, {"search.merge.bank": ("bank", layout)})
        evaluators[layout] = ProxyEvaluator(dataclasses.replace(source, config=configured), data=data)
    plan = SearchPlan.of(search.config)
    mixtures = held_out_draws(search.domains, draws, seed=seed)
    seconds = {layout: [] for layout in LAYOUTS}
    objective = {layout: [] for layout in LAYOUTS}
    largest_difference = 0.0
    for drawn in mixtures:
        scores = {}
        for layout in LAYOUTS:
            started = time.perf_counter()
            result = evaluators[layout].evaluate(list(drawn.mixture.weights))
            seconds[layout].append(time.perf_counter() - started)
            scores[layout] = result.scores[plan.metric]
            objective[layout].append(objective_values(scores[layout], plan.objective, plan.benchmarks)[0])
        largest_difference = max([largest_difference] + [abs(scores["factored"][b] - scores["dense"][b])
                                                         for b in scores["factored"]])
    median = {layout: statistics.median(seconds[layout]) for layout in LAYOUTS}
    return {
        "config": config_path, "search": search.id, "draws": draws, "seed": seed,
        "banks": {layout: type(evaluators[layout].bank).__name__ for layout in LAYOUTS},
        "seconds_per_proxy": median, "factored_over_dense": median["factored"] / median["dense"],
        "largest_score_difference": largest_difference,
        "objectives_differing": sum(a != b for a, b in zip(objective["factored"], objective["dense"])),
        "spearman_between_layouts": spearman(objective["factored"], objective["dense"]),
    }


def markdown(report: dict) -> str:
    s = report["seconds_per_proxy"]
    return "\n".join([
        f"search {report['search']}, {report['draws']} held-out draws (seed {report['seed']}), every dev sample, 1 thread",
        "",
        "| layout | bank | seconds per proxy (median) |",
        "|---|---|---:|",
        *(f"| {layout} | {report['banks'][layout]} | {s[layout]:.2f} |" for layout in LAYOUTS),
        "",
        f"factored / dense: {report['factored_over_dense']:.2f}×; largest score difference "
        f"{report['largest_score_difference']:.3g} points; objectives differing: {report['objectives_differing']} "
        f"of {report['draws']}; Spearman between layouts {report['spearman_between_layouts']:.3f}",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="picks the store")
    parser.add_argument("--search", type=int, default=None, help="default: the newest")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--seed", type=int, default=15, help="the held-out draws of `dmo validate --seed`")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    return emit(measure(args.config, args.search, args.draws, args.seed), args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
