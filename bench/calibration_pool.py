"""Does `dmo best --calibrated` transfer better fitted on several validations pooled than on one?

    python bench/calibration_pool.py [--config configs/demo.yaml] [--search N] [--json]

`dmo best --calibrated` maps each benchmark's proxy scores to the real scale by an isotonic fit on a
validation's held-out pairs (proxy score, real score). One validation holds 10–20 pairs, so the map
is coarse and its ends are set by a handful of mixtures. This judges, for each finished validation V
of the search in turn, the calibration fitted

- on each other single validation U (what `dmo best --calibrated` applied before 2026-12-04, when U
  was the search's latest), and
- on all other validations pooled (what it applies now; a mixture in several counts once, real = the
  mean of its runs),

always on V's held-out mixtures that the fit never saw, each with the isotonic map `dmo best
--calibrated` applies and with the centred isotonic map (one knot per pooled block, rising
between blocks instead of stepping), the step map's plain pick (argmax of the calibrated mean) and its
band pick (`dmo.fidelity.calibration.band_pick`: among mixtures within the map's own in-sample error of
the top, the raw proxy's best), the blend (`dmo.fidelity.mixture_law.judge_blend`: the mean of the
calibrated proxies' and the mixture law's predictions), and beside them the no-proxy baseline: a quadratic mixture law
of the real scores in the weights alone (`dmo.fidelity.mixture_law`), fitted on the same pairs, which
says what the trained mixtures predict without any proxy. Nothing is trained or merged: every figure
comes from the stored proxy and real scores. Each row says which validations it was fitted on, so
no calibration is judged on its own pairs.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from harness import emit, finished_validations
from weight_map import num

from dmo.fidelity.calibration import fit_on_validations, held_out_columns, judge_fitted, mixture_key
from dmo.fidelity.mixture_law import judge_blend, judge_mixture_law


def judge_on(target, fit_from: Sequence, names: list[str], weights, method: str = "isotonic",
             domains: Sequence[str] | None = None) -> dict | None:
    """The calibration fitted on ``fit_from``'s held-out pairs, judged on ``target``'s unseen ones; with
    ``domains``, the no-proxy mixture law fitted on the same pairs too (``None`` where too few)."""
    pooled = fit_on_validations(fit_from, method=method)
    mixtures, proxy, real = held_out_columns(target.results)
    keep = [i for i, w in enumerate(mixtures) if mixture_key(w) not in pooled.mixtures]
    if len(keep) < 2:
        return None
    kept_real = {b: [real[b][i] for i in keep] for b in names}
    judged = judge_fitted(pooled.calibration, {b: [proxy[b][i] for i in keep] for b in names}, kept_real,
                          weights=weights, pooled=pooled)
    row = {"fitted_on": list(pooled.validation_ids), "fit_pairs": len(pooled.mixtures), "judged_on": len(keep),
           "raw": judged["raw"], "calibrated": judged["calibrated"]}
    if domains is not None:
        kept = [mixtures[i] for i in keep]
        row["mixture_law"] = judge_mixture_law(fit_from, kept, kept_real, domains=domains, weights=weights)
        row["blend"] = judge_blend(pooled, fit_from, kept, {b: [proxy[b][i] for i in keep] for b in names}, kept_real,
                                   domains=domains, weights=weights)
    return row


def measure(config_path: str, search_id: int | None) -> dict:
    search, validations = finished_validations(config_path, search_id)
    if len(validations) < 2:
        raise SystemExit(f"search {search.id} has {len(validations)} finished validation(s); this needs at least 2")
    names = [b for b in search.benchmarks if b in held_out_columns(validations[0].results)[1]]
    weights = validations[-1].summary.get("mean_weights")
    domains = list(search.domains)
    rows = []
    for target in validations:
        others = [v for v in validations if v.id != target.id]
        fits = [[u] for u in others] + ([others] if len(others) > 1 else [])
        for fit_from in fits:
            row = judge_on(target, fit_from, names, weights, domains=domains)
            if row is not None:
                centred = judge_on(target, fit_from, names, weights, method="centred")
                rows.append({"judged": target.id, "seed": target.summary.get("seed"), **row,
                             "centred": centred["calibrated"]})
    return {"search": search.id, "benchmarks": names,
            "validations": {str(v.id): {"seed": v.summary.get("seed"), "held_out": v.summary.get("held_out")}
                            for v in validations},
            "rows": rows, "leave_one_out": leave_one_out_means(rows, len(validations))}


def leave_one_out_means(rows: list[dict], validations: int) -> dict | None:
    """Mean ρ and top-1 regret over the rows fitted on every other validation pooled (leave one validation
    out: what `dmo best --calibrated` applies), one per judged validation; what the pre-registered rules in
    docs/fidelity.md compare. None with fewer than three validations (then no row pools two)."""
    pooled = [row for row in rows if len(row["fitted_on"]) == validations - 1 > 1]
    if not pooled:
        return None

    def mean(values) -> float:
        values = [v for v in values if v is not None and not math.isnan(v)]
        return sum(values) / len(values) if values else float("nan")

    laws = [row.get("mixture_law") for row in pooled]
    return {"judged": [row["judged"] for row in pooled],
            "spearman": {"raw": mean(r["raw"]["spearman"] for r in pooled),
                         "calibrated": mean(r["calibrated"]["spearman"] for r in pooled),
                         "centred": mean(r["centred"]["spearman"] for r in pooled),
                         "mixture_law": mean(law["spearman"] if law else None for law in laws),
                         "blend": mean(r["blend"]["spearman"] if r.get("blend") else None for r in pooled)},
            "regret": {"raw": mean(r["raw"]["regret"] for r in pooled),
                       "calibrated": mean(r["calibrated"]["regret"] for r in pooled),
                       "band": mean(r["calibrated"]["band_regret"] for r in pooled),
                       "centred": mean(r["centred"]["regret"] for r in pooled),
                       "mixture_law": mean(law["regret"] if law else None for law in laws),
                       "blend": mean(r["blend"]["regret"] if r.get("blend") else None for r in pooled)}}


def rho_cell(row: dict) -> str:
    """ρ to three decimals: the target is ρ ≥ 0.9, and 0.899 must not print as 0.90."""
    low, high = row["spearman_90"]
    rho = row["spearman"]
    return f"{'n/a' if rho is None or math.isnan(rho) else f'{rho:.3f}'} ({num(low)} … {num(high)})"


def law_cell(row: dict | None) -> str:
    return "too few pairs" if row is None else f"{rho_cell(row)}, {num(row['regret'])}"


def markdown(report: dict) -> str:
    heading = (f"search {report['search']}: `dmo best --calibrated`'s map fitted on other validations, judged on "
               "each validation's unseen held-out mixtures")
    lines = [heading, "",
             ("| judged on (seed) | fitted on (pairs) | raw ρ (90 %) | calibrated ρ (90 %) | τ "
              "| raw → calibrated regret | band pick: regret (band) "
              "| centred: ρ (90 %), regret | no proxy, mixture law: ρ (90 %), regret | blend: ρ (90 %), regret |"),
             "|---|---|---|---|---:|---|---|---|---|---|"]
    for row in report["rows"]:
        fitted = "+".join(str(i) for i in row["fitted_on"])
        lines.append(f"| {row['judged']} ({row['seed']}, {row['judged_on']}) | {fitted} ({row['fit_pairs']}) | "
                     f"{rho_cell(row['raw'])} | {rho_cell(row['calibrated'])} | {num(row['calibrated']['kendall'])} | "
                     f"{num(row['raw']['regret'])} → {num(row['calibrated']['regret'])} | "
                     f"{num(row['calibrated']['band_regret'])} ({num(row['calibrated']['band'])}) | "
                     f"{rho_cell(row['centred'])}, {num(row['centred']['regret'])} | {law_cell(row.get('mixture_law'))} | "
                     f"{law_cell(row.get('blend'))} |")
    means = report.get("leave_one_out")
    if means:
        rho, regret = means["spearman"], means["regret"]
        lines += ["", (f"leave one validation out (judged on {', '.join(map(str, means['judged']))}, each fitted on "
                       f"all the others), means: ρ raw {num(rho['raw'])}, calibrated {num(rho['calibrated'])}, centred "
                       f"{num(rho['centred'])}, mixture law {num(rho['mixture_law'])}, blend {num(rho['blend'])}; "
                       f"top-1 regret raw "
                       f"{num(regret['raw'])}, calibrated {num(regret['calibrated'])}, band pick {num(regret['band'])}, "
                       f"centred {num(regret['centred'])}, mixture law {num(regret['mixture_law'])}, blend "
                       f"{num(regret['blend'])}")]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="picks the store")
    parser.add_argument("--search", type=int, help="search id; default the newest")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args()
    return emit(measure(args.config, args.search), args.json, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
