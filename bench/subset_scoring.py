"""Subset scoring: how well proxies ranked on an anchor subset of the dev splits rank like full-split scoring.

    python bench/subset_scoring.py [--config configs/demo.yaml] [--proxies 40] [--fraction 0.25]
                                   [--dev-scale 1] [--json]

Reads the newest finished search of the config's store (run `make demo` first). Scores the base,
each expert and `proxies` held-out mixtures (Dirichlet(1) draws, seed 2026, never the search's
trials) on every sample of every search benchmark, keeping each sample's credit. Then, side by
side, ranks the proxies by their objective on the anchor subset of each rule of
`dmo.search.anchors` (chosen from the base's and the experts' credit only; 20 seeds each) and on
the first samples of each split (what `evaluation.dev_limit` scores), and compares each ranking
with the full-split one: Spearman ρ, and what a search would end with after rescoring its top 5
in full (regret against the true best of the 40, and how often the true best is among the 5).
The saving counts what a search pays in samples: the anchor subset for every trial, the reference
models once in full, and the top trials rescored in full. Target (issue 20): ρ ≥ 0.95 from ≤ 25 %
of the dev samples. `--dev-scale 4` scores the same proxies on dev splits and benchmarks four times
the config's size (the first samples of each are the config's own: every split has its own stream),
to show how the subset's agreement grows with the full split's reliability: real benchmarks hold
thousands of samples, the demo's 200.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from harness import emit

from dmo.config import DmoConfig, load_config
from dmo.data.prepared import prepare_for_checkpoint
from dmo.evaluation import evaluate
from dmo.evaluation.benchmarks import search_score
from dmo.fidelity.ranking import spearman
from dmo.search.anchors import ANCHOR_RULES, anchor_count
from dmo.search.objectives import mean_weights
from dmo.search.proxy import ProxyEvaluator
from dmo.search.searches import proxy_source
from storage import Store

RESCORED = 5
DRAWS = 20


def _credits(evaluator: ProxyEvaluator, model, metric: str) -> dict[str, np.ndarray]:
    evaluation = evaluator.config.evaluation
    result = evaluate(model, evaluator.data, evaluator.benchmarks, backend=evaluator.backend, per_sample=True,
                      max_new_tokens=evaluation.max_new_tokens, batch_size=evaluation.batch_size)
    return {name: np.asarray(score.credit[metric]) for name, score in result.benchmarks.items()}


def _objective(credit: dict[str, np.ndarray], weights: dict[str, float], subset: dict[str, np.ndarray] | None) -> float:
    total = sum(weights.values())
    return sum(w * 100.0 * float(credit[b][subset[b]].mean() if subset else credit[b].mean())
               for b, w in weights.items()) / total


def scaled_dev(config: DmoConfig, scale: int) -> DmoConfig:
    """The config with every dev split and every generated benchmark `scale` times as large."""
    domains = tuple(d.model_copy(update={"sizes": d.sizes.model_copy(update={"dev": d.sizes.dev * scale})})
                    for d in config.domains)
    benchmarks = tuple(b.model_copy(update={"size": b.size * scale}) if b.size else b for b in config.benchmarks)
    return config.model_copy(update={"domains": domains, "benchmarks": benchmarks})


def measure(config_path: str, proxies: int, fraction: float, dev_scale: int = 1) -> dict:
    config = load_config(config_path)
    store = Store.open_existing(config.project.resolved_store_url())
    finished = [s for s in store.list_searches() if s.status == "finished"]
    if not finished:
        raise SystemExit(f"no finished search in the store of {config_path}: run `make demo` first")
    search = max(finished, key=lambda s: s.id)
    source = proxy_source(store, search)
    store.dispose()
    if dev_scale != 1:
        source = dataclasses.replace(source, config=scaled_dev(source.config, dev_scale))
    metric = search_score(search.config)
    started = time.perf_counter()
    # A scaled config's domains are new data: encode them with the checkpoints' own tokenizer.
    data = prepare_for_checkpoint(source.config, source.base_checkpoint) if dev_scale != 1 else None
    evaluator = ProxyEvaluator(source, data=data)
    benchmarks = [b.name for b in evaluator.benchmarks]
    weights = mean_weights(search.config) or dict.fromkeys(benchmarks, 1.0)
    references = [_credits(evaluator, evaluator.backend.load(source.base_checkpoint), metric)]
    references += [_credits(evaluator, evaluator.backend.load(path), metric) for path in source.expert_checkpoints]
    mixtures = np.random.default_rng(2026).dirichlet(np.ones(len(source.expert_checkpoints)), size=proxies)
    proxy_credit = []
    for weights_row in mixtures:
        evaluator.bank.load_into(evaluator.model, list(weights_row), evaluator.method)
        proxy_credit.append(_credits(evaluator, evaluator.model, metric))
    seconds = time.perf_counter() - started
    full = np.asarray([_objective(c, weights, None) for c in proxy_credit])
    sizes = {b: len(references[0][b]) for b in benchmarks}
    credit = {b: [r[b] for r in references] for b in benchmarks}
    rules = {}
    for rule in ANCHOR_RULES:  # each over DRAWS seeds: the subset is a draw, so is its ranking
        choose, reads_credit = ANCHOR_RULES[rule]
        rhos, regrets, found = [], [], []
        for seed in range(DRAWS):
            chosen = choose(credit if reads_credit else sizes, fraction, seed)  # type: ignore[arg-type]
            anchors = {b: np.asarray(i) for b, i in chosen.items()}
            on_subset = np.asarray([_objective(c, weights, anchors) for c in proxy_credit])
            rhos.append(spearman(on_subset, full))
            rescored = np.argsort(-on_subset, kind="stable")[:RESCORED]  # what the search rescores in full
            regrets.append(float(full.max() - full[rescored].max()))
            found.append(bool(full.argmax() in rescored))
        rules[rule] = {"spearman_median": statistics.median(rhos), "spearman_min": min(rhos),
                       "regret_mean": statistics.fmean(regrets), "regret_max": max(regrets),
                       "best_found": sum(found) / DRAWS}
    # How noisy the full-split ranking is itself: two disjoint random halves of every benchmark, ranked
    # apart. A subset cannot agree with the full split for reasons the full split does not have.
    halves = []
    for seed in range(DRAWS):
        order = {b: np.random.default_rng([seed, 7]).permutation(n) for b, n in sizes.items()}
        first_half = {b: o[: len(o) // 2] for b, o in order.items()}
        second_half = {b: o[len(o) // 2 :] for b, o in order.items()}
        halves.append(spearman([_objective(c, weights, first_half) for c in proxy_credit],
                               [_objective(c, weights, second_half) for c in proxy_credit]))
    first = {b: np.arange(anchor_count(sizes[b], fraction)) for b in benchmarks}
    rho_first = spearman([_objective(c, weights, first) for c in proxy_credit], full)
    full_samples = sum(sizes.values())
    subset_samples = sum(anchor_count(n, fraction) for n in sizes.values())
    # What a search of M = `proxies` trials scores, in samples: every trial in full; or every trial on
    # the anchors + the reference models once in full where the rule reads their credit (the base and
    # the experts; `random` reads only the sizes) + the top trials again in full.
    plain = proxies * full_samples
    cost = {rule: (proxies * subset_samples + (len(references) if reads else 0) * full_samples
                   + RESCORED * full_samples) / plain for rule, (_, reads) in ANCHOR_RULES.items()}
    best = rules["random"]["spearman_median"]
    return {
        "config": config_path, "search": search.id, "metric": metric, "proxies": proxies, "fraction": fraction,
        "dev_scale": dev_scale,
        "draws": DRAWS, "benchmarks": sizes, "anchor_samples": subset_samples, "full_samples": full_samples,
        "rules": rules, "first_samples_spearman": rho_first, "search_samples_ratio": cost,
        "split_half_spearman": {"median": statistics.median(halves), "min": min(halves)},
        "full_objective_range": [float(full.min()), float(full.max())],
        "seconds": seconds,
        "met": {"default (random) anchors rho >= 0.95": best >= 0.95,
                "subset <= 25 % of dev": subset_samples <= 0.25 * full_samples},
    }


def markdown(report: dict) -> str:
    rules, cost = report["rules"], report["search_samples_ratio"]
    scale = (f" with dev splits and benchmarks {report['dev_scale']}× the config's size"
             if report.get("dev_scale", 1) != 1 else "")
    lines = [
        (f"Search {report['search']} of {report['config']}{scale}, scored by {report['metric']}: {report['proxies']} "
         f"held-out proxies (Dirichlet(1), seed 2026) on every sample of {len(report['benchmarks'])} benchmarks "
         f"({report['full_samples']} samples); full-split objectives {report['full_objective_range'][0]:.2f}–"
         f"{report['full_objective_range'][1]:.2f}. Each rule's subset is drawn with {report['draws']} seeds."),
        "",
        (f"| anchors ({report['anchor_samples']} of {report['full_samples']} samples, "
         f"{100 * report['fraction']:.0f} %) | Spearman ρ vs full, median (worst) | after rescoring the top "
         f"{RESCORED}: regret, mean (worst) | true best rescored | samples a search scores vs all |"),
        "|---|---:|---:|---:|---:|",
    ]
    for rule, row in rules.items():
        lines.append(f"| `{rule}` | {row['spearman_median']:.3f} ({row['spearman_min']:.3f}) | "
                     f"{row['regret_mean']:.2f} ({row['regret_max']:.2f}) | {100 * row['best_found']:.0f} % | "
                     f"{cost[rule]:.2f}× |")
    lines.append(f"| the first samples of each split | {report['first_samples_spearman']:.3f} | | | |")
    halves = report["split_half_spearman"]
    lines += ["", (f"The full ranking's own noise: two disjoint random halves of every benchmark rank the "
                   f"{report['proxies']} proxies with Spearman ρ {halves['median']:.3f} between them (median of "
                   f"{report['draws']} splits; worst {halves['min']:.3f}).")]
    lines += ["", *(f"- {name}: {'met' if ok else 'not met'}" for name, ok in report["met"].items())]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--proxies", type=int, default=40)
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--dev-scale", type=int, default=1, help="dev splits and benchmarks this many times as large")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="12 proxies")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if not Path(args.config).is_file():
        print(f"no config {args.config}", file=sys.stderr)
        return 2
    return emit(measure(args.config, 12 if args.quick else args.proxies, args.fraction, args.dev_scale), args.json, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
