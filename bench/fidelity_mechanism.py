"""Why a validation's mean-score ranking agrees or not: each benchmark's scale in proxies and real models.

    python bench/fidelity_mechanism.py [--config configs/demo.yaml] [--search ID | --validation ID] [--json]

Reads validation ID, or the search's newest finished validation, from the config's store (default:
the newest search that has one) and prints, per search benchmark, over its held-out mixtures (a mixture trained twice
counts once, at the mean of its runs; the search's picks are left out as `dmo validate` leaves them
out): the real and the proxy score's mean and range, the Spearman ρ of proxy against real, and how
closely each side's mean score moves with that benchmark (Spearman of the benchmark against the
mean the search maximised); how well each domain's weight alone ranks the mixtures (the bar a
proxy has to clear); and the best real mixture. A benchmark that spans many points in the proxies
and few in the real models steers the proxies' mean and not the real one: the saturation docs/fidelity.md describes.
For a validation trained with `--repeats 2` it also splits the real scores' run-to-run noise
(dmo.fidelity.noise): how much of it item sampling alone explains, and the one-run reliability with
the dev splits as they are, four times as large, and infinite: whether bigger dev splits could lift
the real ranking's test–retest, or only less training noise could.
Nothing is trained or scored here; it reads the stored pairs.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from harness import emit

from dmo.config import load_config
from dmo.fidelity.calibration import held_out_columns, mixture_key
from dmo.fidelity.noise import NoiseComponents, item_variance, mean_item_variance, noise_components
from dmo.fidelity.ranking import benchmark_mean, spearman
from dmo.search.objectives import mean_weights
from storage import Store


def measure(config_path: str, search_id: int | None, validation_id: int | None = None) -> dict:
    config = load_config(config_path)
    store = Store.open_existing(config.project.resolved_store_url())
    try:
        if validation_id is not None:
            validation = store.get_validation(validation_id)
            search = store.get_search(validation.search_id)
        else:
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
    mixtures, proxy, real = held_out_columns(validation.results)
    names = [b for b in search.benchmarks if b in proxy]
    weights = mean_weights(search.config)
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
    # How far one domain's weight alone ranks the mixtures: the bar a proxy has to clear to earn its cost.
    by_weight = {d: {"rho_with_real_mean": spearman([m[d] for m in mixtures], real_mean),
                     "rho_with_proxy_mean": spearman([m[d] for m in mixtures], proxy_mean)}
                 for d in search.config.domain_names}
    best = int(np.argmax(real_mean))
    noise = run_noise(validation.results, names, weights, benchmark_items(search.config))
    return {"search": search.id, "validation": validation.id, "mixtures": len(proxy_mean),
            "seed": validation.summary.get("seed"), "repeats": validation.summary.get("repeats"),
            "merge": search.config.search.merge.method,
            "mean_score": {"rho_proxy_real": spearman(proxy_mean, real_mean),
                           "real_range": [float(real_mean.min()), float(real_mean.max())],
                           "proxy_range": [float(proxy_mean.min()), float(proxy_mean.max())]},
            "benchmarks": rows, "by_weight": by_weight,
            "best_real": {"weights": mixtures[best], "mean_score": float(real_mean[best])},
            "noise": noise}


def benchmark_items(config) -> dict[str, int | None]:
    """Each benchmark's item count where the config fixes it (a domain's dev split, a generator's size)."""
    dev = {d.name: d.sizes.dev for d in config.domains}
    return {b.name: dev[b.domain] if b.domain is not None else b.size if b.generator is not None else None
            for b in config.benchmarks}


def paired_runs(results, value=lambda result: result.real_scores) -> list[tuple]:
    """``(value(run 0), value(run 1))`` of every held-out mixture trained twice; the search's picks are left out."""
    runs: dict[tuple, dict[int, object]] = {}
    for result in results:
        if result.group != "pick":
            runs.setdefault(mixture_key(result.weights), {})[result.replicate] = value(result)
    return [(by_replicate[0], by_replicate[1]) for by_replicate in runs.values() if {0, 1} <= set(by_replicate)]


def noise_split(first: dict[str, list[float]], second: dict[str, list[float]], names: list[str], weights,
                items: dict[str, int | None]) -> dict[str, NoiseComponents]:
    """Each benchmark's and the mean score's noise components from two runs' score columns."""
    item = {b: item_variance(first[b] + second[b], items[b]) for b in names if items.get(b)}
    rows = {b: noise_components(first[b], second[b], item.get(b)) for b in names}
    mean_item = mean_item_variance(item, weights) if len(item) == len(names) else None
    rows["mean score"] = noise_components(benchmark_mean(first, names, weights),
                                          benchmark_mean(second, names, weights), mean_item)
    return rows


def run_noise(results, names: list[str], weights, items: dict[str, int | None]) -> dict | None:
    """Per benchmark and on the mean score: signal, run-to-run and item variance, and one run's reliability
    as the dev splits are, 4× as large and infinite; None unless the held-out mixtures were trained twice."""
    pairs = paired_runs(results)
    if len(pairs) < 3:
        return None
    first = {b: [a[b] for a, _ in pairs] for b in names}
    second = {b: [z[b] for _, z in pairs] for b in names}

    def row(parts: NoiseComponents) -> dict:
        return {"signal": parts.signal, "run": parts.run, "item": parts.item,
                "reliability": parts.reliability(), "reliability_4x_items": parts.reliability(4.0),
                "reliability_no_item_noise": parts.reliability(float("inf"))}

    return {name: row(parts) for name, parts in noise_split(first, second, names, weights, items).items()}


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
    best = report["best_real"]
    lines += ["", "| ranked by one domain's weight | ρ with the real mean | ρ with the proxies' mean |",
              "|---|---:|---:|"]
    lines += [f"| w {domain} | {row['rho_with_real_mean']:.2f} | {row['rho_with_proxy_mean']:.2f} |"
              for domain, row in report["by_weight"].items()]
    mixture = ", ".join(f"{d} {w:.2f}" for d, w in best["weights"].items())
    lines += ["", f"best real mixture: {mixture} (mean score {best['mean_score']:.2f})"]
    if report["noise"] is not None:
        def num(value) -> str:
            return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"

        lines += ["", ("| real scores, two runs per mixture | signal var | run-to-run var | of which items (binomial) "
                       "| one-run reliability | with 4× dev items | with no item noise |"),
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {name} | {num(r['signal'])} | {num(r['run'])} | {num(r['item'])} | {num(r['reliability'])} "
                  f"| {num(r['reliability_4x_items'])} | {num(r['reliability_no_item_noise'])} |"
                  for name, r in report["noise"].items()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="picks the store")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--search", type=int, default=None, help="its newest finished validation")
    which.add_argument("--validation", type=int, default=None, help="this validation (an earlier one too)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    return emit(measure(args.config, args.search, args.validation), args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
