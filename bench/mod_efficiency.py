"""MoD vs dense, side by side in one run: FLOPs, KV cache, forward wall time, accuracy.

    python bench/mod_efficiency.py [--config configs/demo.yaml] [--patch 4] [--steps 500] [--json]

Cost is measured on vision-heavy inputs (the config's image tokens + 16 text
tokens); the two models' forward passes take turns, so load on a shared
machine hits both alike. Accuracy: a MoD and a dense expert trained the same way (same seed,
data, steps, from the same fresh initialisation) on the `--domain` domain,
scored by exact match on its dev split. Target: FLOPs ≤ 0.6 of dense with
accuracy within 2 points.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from dmo.config import load_config
from dmo.data.prepared import prepare_data
from dmo.evaluation import benchmarks_for, evaluate
from dmo.mixture import Mixture
from dmo.models.backends import get_backend
from dmo.models.checkpoint import load_checkpoint
from dmo.models.efficiency import efficiency_vs_dense, probe_batch
from dmo.training.jobs import initial_model
from dmo.training.loop import TrainingRun, train

TEXT_TOKENS = 16


def interleaved_forward_seconds(models: dict[str, torch.nn.Module], batch: dict, rounds: int) -> dict[str, float]:
    """Median forward time per model, the models taking turns, so a shared machine's load hits both alike."""
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():
            model(**batch)  # warm-up
        for _ in range(rounds):
            for name, model in models.items():
                started = time.perf_counter()
                model(**batch)
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    parser.add_argument("--patch", type=int, default=4, help="ViT patch size (4 → 64 vision tokens of a 32 px image)")
    parser.add_argument("--domain", default="counting")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=32, help="batch size of the timing runs")
    parser.add_argument("--rounds", type=int, default=10, help="timed forward passes per model, alternating")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)

    config = load_config(args.config)
    workdir = Path(tempfile.mkdtemp(prefix="dmo-bench-mod-"))
    mod_config = config.model_copy(update={
        "project": config.project.model_copy(update={"workdir": workdir}),
        "model": config.model.model_copy(update={"patch_size": args.patch}),
    })
    dense_config = mod_config.model_copy(update={"model": mod_config.model.model_copy(update={"mod": mod_config.model.mod.model_copy(update={"schedule": "dense"})})})
    data = prepare_data(mod_config)

    models = {name: initial_model(cfg, data, None, seed=0).eval() for name, cfg in (("mod", mod_config), ("dense", dense_config))}
    forward_s = interleaved_forward_seconds(models, probe_batch(models["mod"].config, args.batch, n_text=TEXT_TOKENS), args.rounds)

    rows = {}
    for name, cfg in (("mod", mod_config), ("dense", dense_config)):
        mixture = Mixture.one_hot(data.names, args.domain)
        settings = cfg.training.expert.model_copy(update={"steps": args.steps, "freeze_vision": False})
        result = train(TrainingRun(name, mixture, settings, seed=0), models[name].train(), data, workdir / name,
                       backend=get_backend("mod_mllm"))
        scores = evaluate(load_checkpoint(workdir / name), data, benchmarks_for(data.names, "dev"),
                          backend=get_backend("mod_mllm")).scores("exact_match")
        rows[name] = {"forward_s": forward_s[name], "train_s": result.seconds, "accuracy": scores[args.domain]}

    report = efficiency_vs_dense(initial_model(mod_config, data, None, seed=0).config, n_text=TEXT_TOKENS, n_vis=mod_config.model.num_image_tokens)
    summary = {
        "vision_tokens": mod_config.model.num_image_tokens,
        "text_tokens": TEXT_TOKENS,
        "flops_ratio": report.flops_ratio,
        "kv_ratio": report.kv_ratio,
        "forward_time_ratio": rows["mod"]["forward_s"] / rows["dense"]["forward_s"],
        "train_time_ratio": rows["mod"]["train_s"] / rows["dense"]["train_s"],
        "accuracy_mod": rows["mod"]["accuracy"],
        "accuracy_dense": rows["dense"]["accuracy"],
        "accuracy_gap": rows["dense"]["accuracy"] - rows["mod"]["accuracy"],
        "targets_met": report.flops_ratio <= 0.6 and rows["dense"]["accuracy"] - rows["mod"]["accuracy"] <= 2.0,
        "domain": args.domain,
        "steps": args.steps,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(markdown(summary))


def markdown(summary: dict) -> str:
    return "\n".join([
        f"MoD vs dense, {summary['vision_tokens']} vision + {summary['text_tokens']} text tokens, "
        f"{summary['domain']} expert, {summary['steps']} steps",
        "",
        "| FLOPs ratio | KV ratio | forward wall-time ratio | training wall-time ratio | accuracy MoD | accuracy dense |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {summary['flops_ratio']:.3f} | {summary['kv_ratio']:.3f} | {summary['forward_time_ratio']:.3f} | "
        f"{summary['train_time_ratio']:.3f} | {summary['accuracy_mod']:.1f} | {summary['accuracy_dense']:.1f} |",
        "",
        f"target: FLOPs ≤ 0.6 of dense with accuracy within 2 points (dense − MoD = "
        f"{summary['accuracy_gap']:+.1f}) → {'met' if summary['targets_met'] else 'NOT met'}",
    ])

if __name__ == "__main__":
    main()
