"""Which form should the mixture law take: Scheffé's quadratic, Becker's terms per benchmark, or log-odds?

    python bench/law_forms.py [--config configs/demo.yaml] [--search N] [--validations 1 2 3] [--json]

`dmo best --calibrated` ranks a search's trials by a mixture law of the real scores in the weights
(`dmo.fidelity.mixture_law`), fitted on every finished validation's held-out mixtures. This judges, for each
of the chosen validations V in turn (default: all finished ones of the search), the law fitted on all the
other chosen validations pooled (leave one validation out), on V's held-out mixtures, with each blending
term of `dmo.fidelity.mixture_law.BLENDING_TERMS` for every benchmark, with the term picked per benchmark
by leave-one-out error on the fitted mixtures (`select`), and with the quadratic fitted on each benchmark's
log-odds (`logit`). It prints mean-score ρ with its 90 % interval, τ and top-1 regret, the terms `select`
picked, the quadratic law's and the logit law's ρ per benchmark (the quadratic is what `dmo best
--calibrated` ranks by; the issue's per-benchmark target reads them), the best real mixture of each judged
validation, and the means over the judged validations. The rules it answers were written before their
draws existed (docs/fidelity.md). Nothing is trained or merged.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from harness import emit, finished_validations
from weight_map import num

from dmo.fidelity.calibration import held_out_columns
from dmo.fidelity.mixture_law import BLENDING_TERMS, SELECT, judge_mixture_law, law_on_validations
from dmo.fidelity.ranking import benchmark_mean, spearman

FORMS = (*BLENDING_TERMS, SELECT)
LOGIT = "logit"  # the quadratic fitted on each benchmark's log-odds (`link="logit"`), pre-registered 2026-12-05
VARIANTS = {**{form: {"form": form} for form in FORMS}, LOGIT: {"form": "quadratic", "link": "logit"}}


def judge_forms(target, fit_from: Sequence, names: Sequence[str], domains: Sequence[str], weights) -> dict | None:
    """Every law form fitted on ``fit_from``'s held-out mixtures, judged on ``target``'s (``None`` where the
    pool is too small for a law); ``terms``: the blending term ``select`` picked per benchmark."""
    mixtures, _, real = held_out_columns(target.results)
    real = {b: real[b] for b in names}
    judged = {name: judge_mixture_law(fit_from, mixtures, real, domains=domains, weights=weights, **variant)
              for name, variant in VARIANTS.items()}
    if judged[SELECT] is None:
        return None
    law, fitted_on = law_on_validations(fit_from, names, domains, judged=mixtures, form=SELECT)
    quadratic = law_on_validations(fit_from, names, domains, judged=mixtures)[0].predict(mixtures)
    logit = law_on_validations(fit_from, names, domains, judged=mixtures, link="logit")[0].predict(mixtures)
    best = mixtures[int(benchmark_mean(real, names, weights).argmax())]  # its runs averaged, as the interior test reads it
    return {"best_real": best, "judged": target.id, "seed": target.summary.get("seed"), "fitted_on": [u.id for u in fit_from],
            "fit_mixtures": fitted_on, "judged_on": len(mixtures), "forms": judged,
            "terms": {b: law.term(b) for b in law.coefficients},
            "quadratic_per_benchmark": {b: spearman(quadratic[b], real[b]) for b in quadratic},
            "logit_per_benchmark": {b: spearman(logit[b], real[b]) for b in logit}}


def measure(config_path: str, search_id: int | None, validation_ids: Sequence[int] | None) -> dict:
    search, validations = finished_validations(config_path, search_id)
    if validation_ids:
        missing = sorted(set(validation_ids) - {v.id for v in validations})
        if missing:
            raise SystemExit(f"search {search.id} has no finished validation {', '.join(map(str, missing))}")
        validations = [v for v in validations if v.id in set(validation_ids)]
    if len(validations) < 2:  # two: each judged by the laws fitted on the other alone
        raise SystemExit(f"{len(validations)} validation(s) chosen; leaving one out needs at least 2")
    names = [b for b in search.benchmarks if b in held_out_columns(validations[0].results)[2]]
    weights = validations[-1].summary.get("mean_weights")
    rows = [row for target in validations
            if (row := judge_forms(target, [v for v in validations if v.id != target.id], names,
                                   list(search.domains), weights)) is not None]
    return {"search": search.id, "benchmarks": names, "rows": rows, "means": means(rows)}


def means(rows: list[dict]) -> dict:
    """Mean ρ and regret per form over the judged validations: what the pre-registered rule compares."""
    def mean(values) -> float:
        values = [v for v in values if v is not None and not math.isnan(v)]
        return sum(values) / len(values) if values else float("nan")

    summary = {name: {"spearman": mean(r["forms"][name]["spearman"] for r in rows),
                      "regret": mean(r["forms"][name]["regret"] for r in rows)} for name in VARIANTS}
    # The pre-registered rule's (i): every benchmark's ρ on every judged seed, pooled over the same pairs for
    # both laws. A pair where both are undefined (a constant real side) is left out of both; where one law's
    # predictions are constant and the other's are not, that law ranks nothing there and counts 0.
    pairs = [(r["quadratic_per_benchmark"][b], r["logit_per_benchmark"][b]) for r in rows for b in r["quadratic_per_benchmark"]]
    kept = [tuple(0.0 if _undefined(v) else v for v in pair) for pair in pairs if not all(map(_undefined, pair))]
    for index, name in enumerate(("quadratic", LOGIT)):
        summary[name]["per_benchmark"] = mean(pair[index] for pair in kept)
        summary[name]["per_benchmark_pairs"] = len(kept)
        summary[name]["per_benchmark_left_out"] = len(pairs) - len(kept)
    return summary


def _undefined(value: float | None) -> bool:
    return value is None or math.isnan(value)


def cell(row: dict) -> str:
    low, high = row["spearman_90"]
    return f"{row['spearman']:.3f} ({num(low)} … {num(high)}), {num(row['kendall'])}, {num(row['regret'])}"


def markdown(report: dict) -> str:
    lines = [(f"search {report['search']}: the mixture law fitted on the other validations pooled, judged on each "
              "one's held-out mixtures; cells: mean-score ρ (90 %), τ, top-1 regret"), "",
             "| judged on (seed, mixtures) | fitted on (mixtures) | " + " | ".join(VARIANTS) + " | select picked |",
             "|---|---|" + "---|" * len(VARIANTS) + "---|"]
    for row in report["rows"]:
        picked = ", ".join(f"{b} {t}" for b, t in row["terms"].items())
        lines.append(f"| {row['judged']} ({row['seed']}, {row['judged_on']}) | "
                     f"{'+'.join(map(str, row['fitted_on']))} ({row['fit_mixtures']}) | "
                     + " | ".join(cell(row["forms"][name]) for name in VARIANTS) + f" | {picked} |")
    for name in ("quadratic", LOGIT):
        lines += ["", f"the {name} law's ρ per benchmark (n/a: a constant side):", ""]
        lines += [f"- {row['judged']} ({row['seed']}): " + ", ".join(f"{b} {num(r)}" for b, r in row[f"{name}_per_benchmark"].items())
                  for row in report["rows"]]
    lines += ["", "the best real mixture (largest weight; the issue asks for none above 0.7):", ""]
    lines += [f"- {row['judged']} ({row['seed']}): " + ", ".join(f"{d} {w:.2f}" for d, w in row["best_real"].items())
              + f" ({max(row['best_real'].values()):.2f})" for row in report["rows"]]
    lines += ["", "means: " + "; ".join(f"{name} ρ {m['spearman']:.3f}, regret {num(m['regret'])}"
                                        + (f", per benchmark {num(m['per_benchmark'])} over {m['per_benchmark_pairs']} "
                                           f"(benchmark, seed) pairs, {m['per_benchmark_left_out']} left out"
                                           if "per_benchmark" in m else "")
                                        for name, m in report["means"].items())]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="picks the store")
    parser.add_argument("--search", type=int, help="search id; default the newest")
    parser.add_argument("--validations", type=int, nargs="+", help="validation ids to judge among (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args()
    return emit(measure(args.config, args.search, args.validations), args.json, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
