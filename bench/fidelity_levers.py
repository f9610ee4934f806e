"""What moves proxy fidelity: the demo against one changed setting at a time.

For the demo config and each config in configs/fidelity/ (a longer base, LoRA,
the likelihood score …) this makes sure there is a finished search and a
validation with M mixtures (running `dmo demo` and `dmo validate` when not;
about 10–15 min each on 2 cores, less where models are cached), then prints
side by side: how well each expert learned its own domain, and the rank
fidelity of the proxies against mixture-trained models.

    python bench/fidelity_levers.py [--mixtures 10] [--no-run] [--json] [CONFIG ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from decision_cost import ensure_validated
from harness import emit

from dmo.config import load_config
from dmo.fidelity.ranking import spearman_interval
from storage import Store

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = [REPO / "configs" / "demo.yaml", *sorted((REPO / "configs" / "fidelity").glob("*.yaml"))]


def lever_row(config_path: Path, mixtures: int, run: bool) -> dict:
    config = load_config(config_path)
    with Store.open(config.project.resolved_store_url()) as store:
        search, validation = ensure_validated(config_path, store, mixtures, run)
        experts = {d: store.get_model(i) for d, i in zip(search.domains, search.expert_ids)}
        mixture_models = [store.get_model(r.model_id) for r in validation.results if r.model_id is not None]
    summary = validation.summary
    # Recomputed from the stored pairs, so validations made before the interval was stored have it too.
    proxy_mean = [sum(r.proxy_scores.values()) / len(r.proxy_scores) for r in validation.results]
    real_mean = [sum(r.real_scores.values()) / len(r.real_scores) for r in validation.results]
    return {
        "config": str(config_path.relative_to(REPO)) if config_path.is_relative_to(REPO) else str(config_path),
        "search_id": search.id,
        "validation_id": validation.id,
        "metric": config.evaluation.score,
        # Own-domain dev exact match: did the expert learn its domain at all?
        "expert_own_em": {d: e.metrics["dev"]["benchmarks"][d]["exact_match"] for d, e in experts.items()},
        "expert_train_s": sum(e.duration_s or 0.0 for e in experts.values()),
        "mixture_train_s": sum(m.duration_s or 0.0 for m in mixture_models),
        "mean_score": {k: summary["mean_score"][k] for k in ("spearman", "kendall", "regret", "in_top_3")},
        "spearman_90": list(spearman_interval(proxy_mean, real_mean)),
        "per_benchmark_spearman": {b: row["spearman"] for b, row in summary["per_benchmark"].items()},
        "mixtures": len(validation.results),
    }


def _signed(value: float | None) -> str:
    """A correlation, or n/a where it is undefined (all scores tied; stored as null)."""
    return "n/a" if value is None or value != value else f"{value:+.2f}"


def markdown(report: dict) -> str:
    rows = report["rows"]
    domains = list(rows[0]["expert_own_em"])
    lines = [
        "| config | score | experts' own-domain dev EM (" + ", ".join(domains) + ") | ρ mean (90% bootstrap) "
        "| τ mean | regret | pick in top-3 | ρ per benchmark (" + ", ".join(domains) + ") |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        own = " / ".join(f"{r['expert_own_em'][d]:.1f}" for d in domains)
        per = " / ".join(_signed(r["per_benchmark_spearman"].get(d)) for d in domains)
        m = r["mean_score"]
        low, high = r["spearman_90"]
        lines.append(f"| {r['config']} | {r['metric']} | {own} | {m['spearman']:.3f} ({low:+.2f} … {high:+.2f}) | {m['kendall']:.3f} "
                     f"| {m['regret']:.2f} | {'yes' if m['in_top_3'] else 'no'} | {per} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", type=Path, help="default: configs/demo.yaml and configs/fidelity/*.yaml")
    parser.add_argument("--mixtures", type=int, default=10)
    parser.add_argument("--no-run", action="store_true", help="only read the stores, never train")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configs = [path.resolve() for path in args.configs] or DEFAULT_CONFIGS
    report = {"mixtures": args.mixtures, "rows": [lever_row(path, args.mixtures, not args.no_run) for path in configs]}
    return emit(report, args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
