"""Does a bigger dev split raise the real ranking's test–retest, as the noise split predicts?

    python bench/retest_dev_size.py --validation ID [--config configs/demo.yaml] [--factor 4] [--jobs 2] [--json]

Takes a finished `dmo validate --repeats 2` validation, rescores both trained models of every held-out
mixture with `dmo eval CKPT --benchmarks search` on a copy of the config whose dev splits and generated
benchmarks are `--factor` times as large, and prints, side by side for the splits as stored and as
scaled: the real mean score's test–retest Spearman ρ with its 90 % interval and ceiling, each benchmark's,
and the one-run reliability the noise split (dmo.fidelity.noise) measures, beside the reliability it
predicted from the stored runs for that factor. Nothing is trained; the scaled splits are generated in a
scratch workdir. Scoring costs about a minute per model on one core at `--factor 4` for the demo.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml
from fidelity_mechanism import benchmark_items, noise_split, paired_runs
from harness import emit

from dmo.config import load_config
from dmo.fidelity.ranking import retest_agreement
from dmo.search.objectives import mean_weights
from storage import Store


def scaled_config(config_path: Path, factor: int, workdir: Path) -> Path:
    """A copy of the project YAML with every dev split and generated benchmark ``factor`` times as large,
    its workdir in ``workdir`` and its paths made absolute (they are relative to the config's folder)."""
    raw = yaml.safe_load(config_path.read_text())
    raw["project"]["workdir"] = str(workdir)
    for domain in raw["domains"]:
        domain["sizes"]["dev"] *= factor
    for benchmark in raw.get("benchmarks", []):
        if "size" in benchmark:
            benchmark["size"] *= factor
    base = raw.get("training", {}).get("pretrained_base")
    if base is not None:
        base["path"] = str((config_path.parent / base["path"]).resolve())
    out = workdir / config_path.name
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def rescore(checkpoint: str, config: Path) -> dict[str, float]:
    dmo = Path(sys.executable).with_name("dmo")
    done = subprocess.run([str(dmo), "eval", checkpoint, "-c", str(config), "--benchmarks", "search", "--json"],
                          check=False, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"dmo eval {checkpoint} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return {name: row["score"] for name, row in json.loads(done.stdout)["benchmarks"].items()}


def measure(config_path: str, validation_id: int, factor: int, jobs: int) -> dict:
    config = load_config(config_path)
    store = Store.open_existing(config.project.resolved_store_url())
    try:
        validation = store.get_validation(validation_id)
        search = store.get_search(validation.search_id)
        pairs = [tuple((scores, store.get_model(model_id).checkpoint_uri) for scores, model_id in pair)
                 for pair in paired_runs(validation.results, lambda result: (result.real_scores, result.model_id))]
    finally:
        store.dispose()
    if len(pairs) < 3:
        raise SystemExit(f"validation {validation_id} has no held-out mixtures trained twice: "
                         "run `dmo validate SEARCH --repeats 2` first")
    names = [b for b in search.benchmarks if b in pairs[0][0][0]]
    weights = mean_weights(search.config)
    items = benchmark_items(search.config)
    scaled_items = {b: None if n is None else n * factor for b, n in items.items()}

    with tempfile.TemporaryDirectory(prefix="dmo-retest-") as scratch:
        scaled = scaled_config(Path(config_path), factor, Path(scratch))
        checkpoints = [c for pair in pairs for _, c in pair]
        # The first model alone: its run generates the scaled splits into the scratch workdir, which the
        # parallel runs then read instead of each generating them at once.
        scores = {checkpoints[0]: rescore(checkpoints[0], scaled)}
        with ThreadPoolExecutor(jobs) as pool:
            rest = checkpoints[1:]
            scores.update(zip(rest, pool.map(lambda c: rescore(c, scaled), rest), strict=True))

    def columns(pick) -> tuple[dict, dict]:
        return ({b: [pick(a)[b] for a, _ in pairs] for b in names}, {b: [pick(z)[b] for _, z in pairs] for b in names})

    stored = columns(lambda run: run[0])
    rescored = columns(lambda run: scores[run[1]])
    predicted = noise_split(*stored, names, weights, items)
    measured = noise_split(*rescored, names, weights, scaled_items)
    return {
        "validation": validation_id, "search": search.id, "mixtures": len(pairs), "factor": factor,
        "items": items,
        "retest": {"stored": retest_agreement(*stored, weights), "scaled": retest_agreement(*rescored, weights)},
        "reliability": {b: {"stored": predicted[b].reliability(), "predicted": predicted[b].reliability(float(factor)),
                            "measured": measured[b].reliability()} for b in predicted},
    }


def markdown(report: dict) -> str:
    def num(value) -> str:
        return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"

    factor, stored, scaled = report["factor"], report["retest"]["stored"], report["retest"]["scaled"]
    heading = (f"validation {report['validation']} (search {report['search']}): {report['mixtures']} held-out "
               f"mixtures, two models each, scored on the dev splits as stored and {factor}× as large")
    lines = [heading, "",
             f"| test–retest | dev splits as stored | {factor}× dev splits |", "|---|---:|---:|"]
    for label, key in (("mean score ρ", "spearman"), ("mean score τ", "kendall"), ("ceiling (√ρ)", "ceiling")):
        lines.append(f"| {label} | {num(stored['mean_score'][key])} | {num(scaled['mean_score'][key])} |")
    lines.append("| mean score ρ, 90 % | " + " | ".join(
        "{:.2f} … {:.2f}".format(*side["mean_score"]["spearman_90"]) for side in (stored, scaled)) + " |")
    lines += [f"| {b} ρ | {num(stored['per_benchmark'][b]['spearman'])} | {num(scaled['per_benchmark'][b]['spearman'])} |"
              for b in stored["per_benchmark"]]
    lines += ["", f"| one-run reliability | as stored | predicted at {factor}× (noise split) | measured at {factor}× |",
              "|---|---:|---:|---:|"]
    lines += [f"| {b} | {num(r['stored'])} | {num(r['predicted'])} | {num(r['measured'])} |"
              for b, r in report["reliability"].items()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="the validation's project YAML (picks the store)")
    parser.add_argument("--validation", type=int, required=True, help="a finished validation run with --repeats 2")
    parser.add_argument("--factor", type=int, default=4, help="how many times larger the rescoring dev splits are")
    parser.add_argument("--jobs", type=int, default=2, help="models rescored at once (one core each)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.factor < 1 or args.jobs < 1:
        parser.error("--factor and --jobs must be at least 1")
    return emit(measure(args.config, args.validation, args.factor, args.jobs), args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
