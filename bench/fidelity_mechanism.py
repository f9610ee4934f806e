"""Why a validation's mean-score ranking agrees or not: each benchmark's scale in proxies and real models.

    python bench/fidelity_mechanism.py [--config configs/demo.yaml] [--search ID] [--json]

Reads the search's newest finished validation from the config's store (default: the newest search
that has one) and prints, per search benchmark, over its held-out mixtures (a mixture trained twice
counts once, at the mean of its runs; the search's picks are left out as `dmo validate` leaves them
out): the real and the proxy score's mean and range, the Spearman ρ of proxy against real, and how
closely each side's mean score moves with that benchmark (Spearman of the benchmark against the
mean the search maximised). A benchmark that spans many points in the proxies and few in the real
models steers the proxies' mean and not the real one: the saturation docs/fidelity.md describes.
Nothing is trained or scored here; it reads the stored pairs.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

import numpy as np
from harness import emit

from dmo.config import load_config
from dmo.fidelity.ranking import benchmark_mean, spearman
from dmo.search.objectives import mean_weights
from storage import Store


def _columns(results, names: list[str]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per benchmark, the held-out mixtures' proxy scores and real scores (mean of the runs)."""
    proxy: dict[str, dict[str, float]] = {}
    runs: dict[str, list[dict[str, float]]] = defaultdict(list)
    for result in results:
        if result.group == "pick":
            continue
        key = repr(sorted(result.weights.items()))
        proxy[key] = result.proxy_scores
        runs[key].append(result.real_scores)
    keys = sorted(proxy)
    proxy_columns = {b: [float(proxy[k][b]) for k in keys] for b in names}
    real_columns = {b: [float(np.mean([r[b] for r in runs[k]])) for k in keys] for b in names}
    return proxy_columns, real_columns


def measure(config_path: str, search_id: int | None) -> dict:
    config = load_config(config_path)
    store = Store.open_existing(config.project.resolved_store_url())
    try:
        searches = [store.get_search(search_id)] if search_id is not None else sorted(
            store.list_searches(), key=lambda s: s.id, reverse=True)
        for search in searches:
            validation = store.latest_validation(search.id, finished_only=True)
            if validation is not None:
                break
        else:
            raise SystemExit("no finished validation in the store: run `dmo validate SEARCH` first")
    finally:
        store.dispose()
    names = list(search.benchmarks)
    weights = mean_weights(search.config)
    proxy, real = _columns(validation.results, names)
    proxy_mean = benchmark_mean(proxy, names, weights)
    real_mean = benchmark_mean(real, names, weights)
    rows = {
        b: {"real_mean": float(np.mean(real[b])), "real_range": [min(real[b]), max(real[b])],
            "proxy_mean": float(np.mean(proxy[b])), "proxy_range": [min(proxy[b]), max(proxy[b])],
            "rho_proxy_real": spearman(proxy[b], real[b]),
            "rho_with_proxy_mean": spearman(proxy[b], proxy_mean),
            "rho_with_real_mean": spearman(real[b], real_mean)}
        for b in names
    }
    return {"search": search.id, "validation": validation.id, "mixtures": len(proxy_mean),
            "seed": validation.summary.get("seed"), "repeats": validation.summary.get("repeats"),
            "merge": search.config.search.merge.method,
            "mean_score": {"rho_proxy_real": spearman(proxy_mean, real_mean),
                           "real_range": [float(real_mean.min()), float(real_mean.max())],
                           "proxy_range": [float(proxy_mean.min()), float(proxy_mean.max())]},
            "benchmarks": rows}


def markdown(report: dict) -> str:
    def span(pair: list[float]) -> str:
        return f"{pair[0]:.1f}–{pair[1]:.1f}"

    heading = (f"search {report['search']}, validation {report['validation']} (draw seed {report['seed']}, "
               f"{report['mixtures']} held-out mixtures, {report['repeats']} run(s) each, merge {report['merge']}); "
               f"mean score: ρ {report['mean_score']['rho_proxy_real']:.2f}, real "
               f"{span(report['mean_score']['real_range'])}, proxy {span(report['mean_score']['proxy_range'])}")
    columns = ("| benchmark | real mean (range) | proxy mean (range) | ρ proxy vs real | ρ with the proxies' mean "
               "| ρ with the real mean |")
    lines = [heading, "", columns, "|---|---|---|---:|---:|---:|"]
    for name, row in report["benchmarks"].items():
        lines.append(f"| {name} | {row['real_mean']:.1f} ({span(row['real_range'])}) | {row['proxy_mean']:.1f} "
                     f"({span(row['proxy_range'])}) | {row['rho_proxy_real']:.2f} | {row['rho_with_proxy_mean']:.2f} "
                     f"| {row['rho_with_real_mean']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="picks the store")
    parser.add_argument("--search", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    return emit(measure(args.config, args.search), args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
