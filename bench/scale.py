"""How the cost of one search trial grows with the number of domains K and the model size.

One trial = the sampler proposing w (Optuna on the SQLite storage a search
uses, stick-breaking over K − 1 coordinates) + building the proxy (one
``addmv`` of the K×P task-vector bank into a bound model) + scoring it on K
benchmarks (greedy generation of `--dev` samples per benchmark). Each part is
timed on its own in this run, for K = 2 … 16 and three model sizes, so the
table shows which part dominates where; one whole trial (ask, build, K
evaluations, tell) is then timed as a search runs it, beside the sum of its
parts. Experts are the base plus random task
vectors: build and evaluation cost do not depend on what the weights learned.

    python bench/scale.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch
from harness import best_seconds, emit

from dmo.merging import TaskVectorBank
from dmo.models import ModMLLMConfig, ModMLLMForCausalLM
from dmo.models.efficiency import probe_batch
from dmo.search.samplers import make_sampler, suggest_mixture

SIZES = {
    "demo (h128×8)": dict(hidden_size=128, num_hidden_layers=8, num_attention_heads=4, intermediate_size=344, vocab_size=512),
    "h384×8": dict(hidden_size=384, num_hidden_layers=8, num_attention_heads=6, intermediate_size=1024, vocab_size=2048),
    "h768×8": dict(hidden_size=768, num_hidden_layers=8, num_attention_heads=12, intermediate_size=2048, vocab_size=8192),
}
QUICK_SIZES = ("demo (h128×8)",)
IMAGE = dict(image_size=32, patch_size=8)
MAX_NEW_TOKENS = 8
WARM_TRIALS = 12  # more than TPE's 10 random start-up trials


def sampler_seconds_per_trial(sampler: str, num_domains: int, trials: int, root: Path) -> float:
    """Mean ask + tell time over `trials` trials on a SQLite RDB storage, as a search runs it."""
    names = [f"d{i}" for i in range(num_domains)]
    target = torch.linspace(1, 2, num_domains)
    target = (target / target.sum()).numpy()
    study = optuna.create_study(
        storage=f"sqlite:///{root / f'{sampler}-{num_domains}.db'}",
        sampler=make_sampler(sampler, seed=0, num_domains=num_domains),
        direction="maximize",
    )
    seconds = []
    for _ in range(trials):
        started = time.perf_counter()
        trial = study.ask()
        w = torch.tensor(suggest_mixture(trial, names).weights).numpy()
        study.tell(trial, -float(abs(w - target).sum()))  # cheap stand-in score: only the sampler is timed
        seconds.append(time.perf_counter() - started)
    return statistics.mean(seconds)


def random_bank(model: torch.nn.Module, num_experts: int) -> TaskVectorBank:
    one = TaskVectorBank.from_state_dicts(model.state_dict(), [model.state_dict()])
    deltas = torch.empty((num_experts, one.num_params), dtype=torch.float32).normal_(0.0, 0.01)
    return TaskVectorBank(base_flat=one.base_flat, deltas=deltas, slots=one.slots, kept=one.kept,
                          expert_names=tuple(f"e{i}" for i in range(num_experts)))


def eval_seconds_per_benchmark(model: ModMLLMForCausalLM, config: ModMLLMConfig, samples: int) -> float:
    batch = probe_batch(config, samples, n_text=16)
    with torch.no_grad():
        return best_seconds(lambda: model.generate_greedy(batch["input_ids"], batch["pixel_values"],
                                                          attention_mask=batch.get("attention_mask"),
                                                          max_new_tokens=MAX_NEW_TOKENS), 2)


def whole_trial_seconds(model: ModMLLMForCausalLM, config: ModMLLMConfig, bank: TaskVectorBank,
                        samples: int, root: Path, tag: str) -> float:
    """One trial end to end, as the driver runs it: TPE ask on SQLite, build, K benchmarks, tell.

    The study first gets WARM_TRIALS told trials, so the timed ask is a real TPE ask, not one
    of its random start-up draws.
    """
    names = [f"d{i}" for i in range(bank.num_experts)]
    study = optuna.create_study(storage=f"sqlite:///{root / f'whole-{tag}.db'}",
                                sampler=make_sampler("tpe", seed=0, num_domains=len(names)), direction="maximize")
    for index in range(WARM_TRIALS):
        warm = study.ask()
        suggest_mixture(warm, names)
        study.tell(warm, float(index))
    batches = [probe_batch(config, samples, n_text=16, seed=i) for i in range(len(names))]
    started = time.perf_counter()
    trial = study.ask()
    bank.load_into(model, list(suggest_mixture(trial, names).weights))
    with torch.no_grad():
        for batch in batches:
            model.generate_greedy(batch["input_ids"], batch["pixel_values"],
                                  attention_mask=batch.get("attention_mask"), max_new_tokens=MAX_NEW_TOKENS)
    study.tell(trial, 0.0)
    return time.perf_counter() - started


def measure(sizes: list[str], ks: list[int], trials: int, dev: int, samplers: list[str]) -> dict:
    root = Path(tempfile.mkdtemp(prefix="dmo-scale-"))
    sampler_rows = [
        {"sampler": name, "K": k, "seconds_per_trial": sampler_seconds_per_trial(name, k, trials, root)}
        for name in samplers for k in ks
    ]
    sampler_s = {(r["sampler"], r["K"]): r["seconds_per_trial"] for r in sampler_rows}
    rows = []
    for size in sizes:
        torch.manual_seed(0)
        config = ModMLLMConfig(**SIZES[size], **IMAGE)
        model = ModMLLMForCausalLM(config).eval()
        eval_s = eval_seconds_per_benchmark(model, config, dev)
        full = random_bank(model, max(ks))
        for k in ks:
            bank = TaskVectorBank(base_flat=full.base_flat, deltas=full.deltas[:k], slots=full.slots,
                                  kept=full.kept, expert_names=full.expert_names[:k])
            bank.bind(model)
            weights = torch.distributions.Dirichlet(torch.ones(k)).sample((4,)).tolist()
            cursor = iter(range(10**9))
            build_s = best_seconds(lambda: bank.load_into(model, weights[next(cursor) % 4]), 5)
            sampler_tpe = sampler_s[("tpe", k)]
            trial_s = sampler_tpe + build_s + k * eval_s
            rows.append({
                "model": size, "params": bank.num_params, "K": k, "build_s": build_s,
                "eval_s_per_benchmark": eval_s, "tpe_s": sampler_tpe, "trial_s": trial_s,
                "build_share": build_s / trial_s,
                "whole_trial_s": whole_trial_seconds(model, config, bank, dev, root, f"{len(rows)}"),
            })
    return {"trials": trials, "dev_samples": dev, "samplers": sampler_rows, "rows": rows}


def markdown(report: dict) -> str:
    lines = [
        f"Sampler time per trial (ask + tell on SQLite, mean of {report['trials']} trials):",
        "",
        "| sampler | " + " | ".join(f"K={k}" for k in sorted({r['K'] for r in report['samplers']})) + " |",
        "|---|" + "---:|" * len({r["K"] for r in report["samplers"]}),
    ]
    for name in dict.fromkeys(r["sampler"] for r in report["samplers"]):
        cells = [f"{1000 * r['seconds_per_trial']:.0f} ms" for r in report["samplers"] if r["sampler"] == name]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"One TPE trial, by part (evaluation: {report['dev_samples']} samples per benchmark, K benchmarks):",
        "",
        "| model | params merged | K | proxy build | eval per benchmark | TPE | sum of parts | build share "
        "| one whole trial, measured |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['model']} | {r['params'] / 1e6:.1f}M | {r['K']} | {1000 * r['build_s']:.1f} ms "
            f"| {r['eval_s_per_benchmark']:.2f} s | {1000 * r['tpe_s']:.0f} ms | {r['trial_s']:.2f} s "
            f"| {100 * r['build_share']:.1f}% | {r['whole_trial_s']:.2f} s |"
        )
    worst = max(report["rows"], key=lambda r: r["build_share"])
    lines += ["", f"The proxy build is at most {100 * worst['build_share']:.1f}% of a trial ({worst['model']}, "
              f"K = {worst['K']}): scoring the proxy, not building it, is what grows with K and the model."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="demo size only, K = 2, 4, 16, 20 trials")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a proxy evaluator uses 1)")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--dev", type=int, default=200, help="samples per benchmark")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(args.threads)
    sizes = list(QUICK_SIZES) if args.quick else list(SIZES)
    ks = [2, 4, 16] if args.quick else [2, 4, 8, 16]
    trials = 20 if args.quick else args.trials
    report = measure(sizes, ks, trials, args.dev, ["tpe", "gp", "random"])
    report["threads"] = args.threads
    return emit(report, args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
