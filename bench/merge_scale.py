"""Would scaling the merged task vectors (task arithmetic's λ) rank a validation's held-out mixtures better?

    python bench/merge_scale.py --config CONFIG --validation N [--lambdas 1,2,3,4] [--limit 600] [--json]

Mechanism 1 of docs/fidelity.md in its strongest form: where the base lacks a skill
(`training.base_mixture` leaves a domain out, configs/fidelity/world-v5.yaml), a model trained on a
quarter of that domain's data has the skill, while a proxy holding a quarter of its expert's task vector
does not. ``θ = θ_0 + λ Σ_i w_i τ_i`` with λ > 1 gives every expert more of its task vector (at
λ = 1/w_i, all of it). For each λ this rebuilds the validation's held-out proxies (its search's base,
experts and benchmarks; nothing is trained), each on the first ``--limit`` samples of every benchmark,
and scores them against the stored real scores with `dmo validate`'s own figures. λ = 1 is rebuilt at
the same limit, so the rows differ only in λ.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from harness import emit
from weight_map import fidelity_cells, fidelity_row

from dmo.config import load_config
from dmo.fidelity.calibration import held_out_columns
from dmo.search.objectives import mean_weights
from dmo.search.pool import ProxySource
from dmo.search.proxy import ProxyEvaluator
from dmo.search.searches import proxy_source
from storage import Store


def measure(config_path: str, validation: int, lambdas: list[float], limit: int | None) -> dict:
    config = load_config(config_path)
    store = Store.open_existing(config.project.resolved_store_url())
    try:
        record = store.get_validation(validation)
        search = store.get_search(record.search_id)
        source = proxy_source(store, search)
    finally:
        store.dispose()
    mixtures, stored, real = held_out_columns(record.results)
    names = [b for b in search.benchmarks if b in stored]
    weights = mean_weights(search.config)
    domains = search.config.domain_names
    rows = {}
    for index, scale in enumerate(lambdas):
        merge = search.config.search.merge.model_copy(update={"params": {**search.config.search.merge.params,
                                                                         "lambda": scale}})
        scaled = search.config.model_copy(update={"search": search.config.search.model_copy(update={"merge": merge})})
        evaluator = ProxyEvaluator(ProxySource(config=scaled, base_checkpoint=source.base_checkpoint,
                                               expert_checkpoints=source.expert_checkpoints))
        proxy: dict[str, list[float]] = {b: [] for b in names}
        for done, mixture in enumerate(mixtures, 1):
            scores = evaluator.evaluate([mixture[d] for d in domains], limit=limit).scores[search.metric]
            for b in names:
                proxy[b].append(float(scores[b]))
            print(f"\rλ {scale} ({index + 1}/{len(lambdas)}): {done}/{len(mixtures)} proxies", end="",
                  file=sys.stderr, flush=True)
        rows[str(scale)] = {**fidelity_row(proxy, real, names, weights),
                            "proxy_mean": {b: float(np.mean(v)) for b, v in proxy.items()}}
    print(file=sys.stderr)
    return {"search": search.id, "validation": validation, "seed": record.summary.get("seed"), "limit": limit,
            "real_mean": {b: float(np.mean(real[b])) for b in names}, "rows": rows}


def markdown(report: dict) -> str:
    lines = [f"search {report['search']}, validation {report['validation']} (seed {report['seed']}), proxies on the "
             f"first {report['limit'] or 'all'} samples per benchmark; real means: "
             + ", ".join(f"{b} {v:.1f}" for b, v in report["real_mean"].items()), "",
             "| λ | mean-score ρ (90 %) | τ | regret | per-benchmark ρ | proxy means |", "|---|---|---:|---:|---|---|"]
    for scale, row in report["rows"].items():
        means = ", ".join(f"{b} {v:.1f}" for b, v in row["proxy_mean"].items())
        lines.append(f"| {scale} | {fidelity_cells(row)} | {means} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="picks the store")
    parser.add_argument("--validation", type=int, required=True)
    parser.add_argument("--lambdas", default="1,2,3,4", help="comma-separated task-arithmetic scales")
    parser.add_argument("--limit", type=int, default=600, help="samples per benchmark each proxy is scored on "
                                                                "(0: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    lambdas = [float(x) for x in args.lambdas.split(",")]
    return emit(measure(args.config, args.validation, lambdas, args.limit or None), args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
