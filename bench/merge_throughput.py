"""Proxy-building throughput: dmo's in-memory TaskVectorBank vs mergekit's run_merge.

For K experts of a ~70M-parameter MoD MLLM (built from a config, experts made
by perturbing the base, saved as checkpoints in a temporary directory) this
prints, per K: proxies/s and GB/s of task-arithmetic proxies written into a
bound model ((K+2)·P·4 bytes per proxy: read Δ and θ0, write θ), the same with
bfloat16 task vectors and with a copy into an unbound model, mergekit's
proxies/s on the same experts and weights, and the ratios to the targets:
≥ 50× mergekit and ≥ 50% of the bandwidth of a large ``tensor.copy_``
(2·bytes per copy, measured in the same run).

    python bench/merge_throughput.py            # full: ~70M params, K = 2, 4, 8
    python bench/merge_throughput.py --quick    # smoke test: small model, K = 2, 4 (< 60 s)
    python bench/merge_throughput.py --json     # one JSON object on stdout
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from harness import best_seconds, emit

from dmo.merging import TaskVectorBank
from dmo.merging.mergekit_interop import run_mergekit
from dmo.models import ModMLLMConfig, ModMLLMForCausalLM
from dmo.models.checkpoint import load_checkpoint, save_checkpoint

FULL = dict(
    hidden_size=768,
    num_hidden_layers=8,
    num_attention_heads=12,
    intermediate_size=2048,
    vocab_size=8192,
)
QUICK = dict(
    hidden_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=688,
    vocab_size=2048,
)
COPY_BYTES = {"full": 1 << 30, "quick": 1 << 28}


def copy_bandwidth(nbytes: int, repeats: int = 3) -> float:
    """GB/s of a large tensor.copy_ (read + write counted), the machine's practical memory bound."""
    source = torch.ones(nbytes // 4, dtype=torch.float32)
    target = torch.empty_like(source)
    seconds = best_seconds(lambda: target.copy_(source), repeats)
    return 2 * source.nbytes / seconds / 1e9


def make_checkpoints(root: Path, settings: dict, num_experts: int) -> tuple[Path, list[Path], int]:
    torch.manual_seed(0)
    model = ModMLLMForCausalLM(ModMLLMConfig(**settings))
    base = root / "base"
    save_checkpoint(model, base)
    experts = []
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    generator = torch.Generator().manual_seed(1)
    for index in range(num_experts):
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                tensor.copy_(state[name] + 0.01 * torch.randn(tensor.shape, generator=generator))
        save_checkpoint(model, root / f"expert{index}")
        experts.append(root / f"expert{index}")
    return base, experts, sum(p.numel() for p in model.parameters())


def sub_bank(
    bank: TaskVectorBank, num_experts: int, deltas: torch.Tensor | None = None
) -> TaskVectorBank:
    """The bank of the first K experts (a row slice of Δ is still one contiguous block)."""
    return TaskVectorBank(
        base_flat=bank.base_flat,
        deltas=(bank.deltas if deltas is None else deltas)[:num_experts],
        slots=bank.slots,
        kept=bank.kept,
        expert_names=bank.expert_names[:num_experts],
    )


def measure(
    base: Path,
    experts: list[Path],
    ks: list[int],
    proxies: int,
    mergekit_runs: int,
    copy_bytes: int,
) -> list[dict]:
    full_bank = TaskVectorBank.from_checkpoints(base, experts[: max(ks)])
    half_deltas = full_bank.deltas.to(torch.bfloat16)
    bound_model, loose_model = load_checkpoint(base), load_checkpoint(base)
    loose = dict(loose_model.named_parameters())
    rows = []
    for k in ks:
        bank, small = sub_bank(full_bank, k), sub_bank(full_bank, k, half_deltas)
        weights = torch.distributions.Dirichlet(torch.ones(k)).sample((proxies,)).tolist()
        p = bank.num_params
        bank.bind(bound_model)
        cursor = iter(range(10**9))

        def bound_proxy() -> None:
            bank.load_into(bound_model, weights[next(cursor) % proxies])

        def bf16_proxy() -> None:
            small.load_into(bound_model, weights[next(cursor) % proxies])

        scratch = torch.empty(p, dtype=torch.float32)

        def copied_proxy() -> None:
            flat = bank.merged_flat(weights[next(cursor) % proxies], out=scratch)
            with torch.no_grad():
                for slot in bank.slots:
                    loose[slot.name].copy_(flat[slot.offset : slot.end].view(slot.shape))

        repeats = max(3, proxies)
        # Copy bandwidth right beside each measurement: the machine is shared, its load varies.
        copy_gbs = copy_bandwidth(copy_bytes)
        seconds = best_seconds(bound_proxy, repeats)
        bf16_seconds = best_seconds(bf16_proxy, repeats)
        copy_seconds = best_seconds(copied_proxy, repeats)

        out_root = Path(tempfile.mkdtemp(prefix="mergekit-out-", dir=base.parent))
        mergekit_seconds = float("inf")
        for run in range(mergekit_runs):
            started = time.perf_counter()
            run_mergekit(base, experts[:k], weights[0], "task_arithmetic", out_root / f"run{run}")
            mergekit_seconds = min(mergekit_seconds, time.perf_counter() - started)
        shutil.rmtree(out_root, ignore_errors=True)

        bytes_per_proxy = (k + 2) * p * 4
        rows.append(
            {
                "K": k,
                "params_merged": p,
                "proxies_per_s": 1 / seconds,
                "gb_per_s": bytes_per_proxy / seconds / 1e9,
                "bf16_proxies_per_s": 1 / bf16_seconds,
                "copy_into_model_proxies_per_s": 1 / copy_seconds,
                "mergekit_proxies_per_s": 1 / mergekit_seconds,
                "speedup_vs_mergekit": mergekit_seconds / seconds,
                "copy_gb_per_s": copy_gbs,
            }
        )
    return rows


def markdown(report: dict) -> str:
    lines = [
        f"model: {report['model_params'] / 1e6:.1f}M params, {report['threads']} torch thread{'s' if report['threads'] != 1 else ''}; "
        f"copy_ bandwidth {report['copy_gb_per_s']:.1f} GB/s (read+write, best of the run)",
        "",
        "| K | P merged | proxies/s | GB/s | % of copy | bf16 proxies/s "
        "| copy-into-model proxies/s | mergekit proxies/s | × mergekit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['K']} | {row['params_merged'] / 1e6:.1f}M | {row['proxies_per_s']:.1f} "
            f"| {row['gb_per_s']:.1f} | {100 * row['fraction_of_copy']:.0f}% "
            f"| {row['bf16_proxies_per_s']:.1f} "
            f"| {row['copy_into_model_proxies_per_s']:.1f} | {row['mergekit_proxies_per_s']:.3f} "
            f"| {row['speedup_vs_mergekit']:.0f}× |"
        )
    verdict = "met" if report["targets_met"] else "NOT met"
    lines += ["", f"targets: ≥ 50× mergekit, ≥ 50% of copy bandwidth → {verdict}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cores = len(os.sched_getaffinity(0))
    parser.add_argument("--quick", action="store_true", help="small model, K = 2, 4 (smoke test)")
    parser.add_argument("--json", action="store_true", help="print one JSON object, not a table")
    parser.add_argument("--threads", type=int, default=cores, help="torch threads (default: cores)")
    parser.add_argument("--proxies", type=int, default=10, help="timed proxies per K (best counts)")
    parser.add_argument("--mergekit-runs", type=int, default=2, help="run_merge calls per K (best)")
    parser.add_argument("--ks", type=int, nargs="+", help="numbers of experts (default 2 4 8)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"
    settings, ks = (QUICK, [2, 4]) if args.quick else (FULL, [2, 4, 8])
    ks = args.ks or ks
    root = Path(tempfile.mkdtemp(prefix="dmo-merge-bench-"))
    try:
        base, experts, model_params = make_checkpoints(root, settings, max(ks))
        rows = measure(base, experts, ks, args.proxies, args.mergekit_runs, COPY_BYTES[mode])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    # The best copy seen in the run is the reference: the least favourable to us.
    copy_gbs = max(row["copy_gb_per_s"] for row in rows)
    for row in rows:
        row["fraction_of_copy"] = row["gb_per_s"] / copy_gbs
    report = {
        "mode": mode,
        "threads": args.threads,
        "model_params": model_params,
        "copy_gb_per_s": copy_gbs,
        "rows": rows,
        "targets_met": all(
            r["speedup_vs_mergekit"] >= 50 and r["fraction_of_copy"] >= 0.5 for r in rows
        ),
    }
    return emit(report, args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
