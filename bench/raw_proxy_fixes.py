"""Would a correction that needs no trained mixture lift the raw proxies' mean-score ranking?

    python bench/raw_proxy_fixes.py [--config configs/demo.yaml] [--search N] [--floor counting_dev=100] [--json]

Across the held-out draws, a proxy's counting score spreads about 20 points (merging loses the skill at
low counting weight) while the real models keep the base's 100, so the proxies' mean score is swayed by
a benchmark that barely moves in reality. Per finished validation of the search, this judges three
rankings of its held-out mixtures against the real mean score (each mixture once, at the mean of its
runs), all from the stored scores, nothing trained or merged:

- raw: the proxies' mean score, as `dmo validate` judges it;
- floored: each `--floor BENCHMARK=SCORE` raises that benchmark's proxy score to at least SCORE (the
  base's own score: a model fine-tuned from the base is assumed not to fall below it), then the mean;
- rank mean: the mean over benchmarks of each proxy score's rank among the draws, which no single
  benchmark's scale can dominate.

Exploratory (docs/fidelity.md): neither correction has been adopted, and a rule for one would have to
be judged on draws not yet made.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

import numpy as np
from harness import emit, finished_validations

from dmo.fidelity.calibration import held_out_columns
from dmo.fidelity.ranking import average_ranks, benchmark_mean, spearman


def judge_fixes(results: Sequence, names: Sequence[str], floors: Mapping[str, float],
                weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Mean-score Spearman ρ of the raw, floored and rank-mean proxy rankings against the real mean over
    ``names``, on one validation's held-out ``results``."""
    _, proxy, real = held_out_columns(results)
    names = [b for b in names if b in proxy]
    real_mean = benchmark_mean(real, names, weights)
    floored = {b: np.maximum(proxy[b], floors[b]) if b in floors else proxy[b] for b in names}
    ranks = {b: average_ranks(proxy[b]) for b in names}
    return {"n": len(real_mean),
            "raw": spearman(benchmark_mean(proxy, names, weights), real_mean),
            "floored": spearman(benchmark_mean(floored, names, weights), real_mean),
            "rank_mean": spearman(benchmark_mean(ranks, names, weights), real_mean)}


def measure(config_path: str, search_id: int | None, floors: Mapping[str, float]) -> dict:
    search, validations = finished_validations(config_path, search_id)
    unknown = sorted(set(floors) - set(search.benchmarks))
    if unknown:
        raise SystemExit(f"--floor names {unknown}, which search {search.id} does not score: {list(search.benchmarks)}")
    rows = [{"validation": v.id, "seed": v.summary.get("seed"),
             **judge_fixes(v.results, list(search.benchmarks), floors, v.summary.get("mean_weights"))}
            for v in validations]
    return {"search": search.id, "floors": dict(floors), "rows": rows}


def rho(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.3f}"


def markdown(report: dict) -> str:
    floors = ", ".join(f"{b} ≥ {v:g}" for b, v in report["floors"].items()) or "none"
    lines = [f"search {report['search']}: raw proxies' mean-score ρ with zero-training corrections (floors: {floors})",
             "", "| validation (seed) | mixtures | raw ρ | floored ρ | rank-mean ρ |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['validation']} ({r['seed']}) | {r['n']} | {rho(r['raw'])} | {rho(r['floored'])} | "
              f"{rho(r['rank_mean'])} |" for r in report["rows"]]
    return "\n".join(lines)


def _floor(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        score = float(value)
    except ValueError:
        score = float("nan")
    if not name or not np.isfinite(score):
        raise argparse.ArgumentTypeError(f"takes BENCHMARK=SCORE, got {text!r}")
    return name, score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="picks the store")
    parser.add_argument("--search", type=int, help="search id; default the newest")
    parser.add_argument("--floor", type=_floor, action="append", default=[],
                        help="BENCHMARK=SCORE: the base's score on that benchmark (repeatable)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args()
    return emit(measure(args.config, args.search, dict(args.floor)), args.json, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
