"""Proxy scoring throughput: greedy generation with and without the KV cache, side by side in one run,
and as a fraction of this machine's matmul limit measured in the same run.

    python bench/generation.py [--config configs/demo.yaml] [--batch 128] [--new-tokens 8] [--hidden H] [--json]

The model is the config's (random weights: speed does not depend on them), routed as the config
says, on dev-shaped prompts (the config's image tokens + 16 text tokens) at the evaluation batch
size; the two paths take turns, so load on a shared machine hits both alike. FLOPs are counted by
torch's FlopCounterMode on the cached path (the useful work); the limit is the best of float32
matmuls of the model's prefill shape (batch × prompt tokens, hidden) × (hidden, intermediate) and
of its decode shape (batch, hidden) × (hidden, intermediate). Target (issue 20): ≥ 4× the uncached
path and ≥ 50 % of the limit. Then the same cached-vs-uncached comparison for the ``hf`` backend, on a
random LLaVA of the same width and depth routed by dmo (:func:`measure_hf`). ``--hidden H`` widens
the config's model to hidden size H (the MLP and heads in proportion) and skips the hf part: how
far the fraction of the limit is set by the demo's width (hidden 128), where norms, rotary and
gathers cost as much as matmuls, rather than by the generation loop.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from harness import best_seconds, emit
from torch.utils.flop_counter import FlopCounterMode

from dmo.config import load_config
from dmo.models.configuration_mod_mllm import ModMLLMConfig
from dmo.models.efficiency import probe_batch
from dmo.models.modeling_mod_mllm import ModMLLMForCausalLM

TEXT_TOKENS = 16


def interleaved_seconds(runs: dict, rounds: int) -> dict[str, float]:
    """The median seconds of each run, the runs taking turns so load on a shared machine hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def comparison_table(before: tuple[str, float], after: tuple[str, float]) -> list[str]:
    """A two-row samples/s table: the path before and the path after."""
    return ["", "| path | samples/s |", "|---|---:|", f"| {before[0]} (before) | {before[1]:.1f} |",
            f"| {after[0]} (after) | {after[1]:.1f} |", ""]


def matmul_flops_per_second(rows: int, inner: int, cols: int, repeats: int = 5) -> float:
    a, b = torch.randn(rows, inner), torch.randn(inner, cols)
    seconds = best_seconds(lambda: a @ b, repeats)
    return 2.0 * rows * inner * cols / seconds


def measure(config_path: str, batch_size: int, new_tokens: int, rounds: int, hidden: int | None = None) -> dict:
    project = load_config(config_path)
    settings = project.model
    if hidden is not None:  # wider, same depth: the MLP's and the heads' ratios to the width kept
        scale = hidden / settings.hidden_size
        settings = settings.model_copy(update={"hidden_size": hidden,
                                               "intermediate_size": round(settings.intermediate_size * scale),
                                               "num_heads": max(1, round(settings.num_heads * scale))})
    config = ModMLLMConfig.from_settings(settings, vocab_size=256, image_token_id=4, pad_token_id=0,
                                         bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = ModMLLMForCausalLM(config).eval()
    batch = probe_batch(config, batch_size, n_text=TEXT_TOKENS)

    def generate(use_cache: bool) -> torch.Tensor:
        with torch.no_grad():  # eos -1: every row generates all its tokens, as the slowest benchmark does
            return model.generate_greedy(batch["input_ids"], batch["pixel_values"], max_new_tokens=new_tokens,
                                         eos_token_id=-1, use_cache=use_cache)

    same = bool(torch.equal(generate(True), generate(False)))
    seconds = interleaved_seconds({"uncached": lambda: generate(False), "cached": lambda: generate(True)}, rounds)
    with FlopCounterMode(display=False) as counter:
        generate(True)
    flops = counter.get_total_flops()
    prompt = batch["input_ids"].shape[1]
    limits = {
        "prefill": matmul_flops_per_second(batch_size * prompt, config.hidden_size, config.intermediate_size),
        "decode": matmul_flops_per_second(batch_size, config.hidden_size, config.intermediate_size),
    }
    achieved = flops / seconds["cached"]
    likelihood = measure_likelihood(model, batch, new_tokens, rounds)
    breakdown = time_by_operator(lambda: generate(True), flops)
    return {
        "breakdown": breakdown,
        "likelihood": likelihood,
        "config": config_path, "batch": batch_size, "prompt_tokens": prompt, "new_tokens": new_tokens,
        "hidden": config.hidden_size, "widened": hidden is not None,
        "threads": torch.get_num_threads(), "identical_tokens": same,
        "samples_per_s": {name: batch_size / s for name, s in seconds.items()},
        "speedup": seconds["uncached"] / seconds["cached"],
        "flops_per_call": flops, "achieved_flops_per_s": achieved,
        "limit_flops_per_s": limits,
        "fraction_of_limit": {shape: achieved / limit for shape, limit in limits.items()},
        "met": {"speedup >= 4": seconds["uncached"] / seconds["cached"] >= 4,
                "fraction of the prefill-shape limit >= 0.5": achieved / limits["prefill"] >= 0.5},
    }


MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


def time_by_operator(run, flops: int) -> dict:
    """Where the cached path's time goes (torch.profiler, CPU self time): the matmuls, attention and the
    rest; and the rate the matmuls alone reach, since they do nearly all of the counted FLOPs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(self_us.values())
    matmul = sum(self_us.get(k, 0.0) for k in MATMULS)
    attention = sum(v for k, v in self_us.items() if "scaled_dot_product" in k)
    with FlopCounterMode(display=False) as counter:
        run()
    matmul_flops = sum(v for k, v in counter.get_flop_counts()["Global"].items() if str(k).split(".")[-1] in
                       ("mm", "addmm", "bmm"))
    return {"matmul_share": matmul / total, "attention_share": attention / total,
            "other_share": 1 - (matmul + attention) / total,
            "matmul_flops_share": matmul_flops / flops if flops else float("nan"),
            "matmul_flops_per_s": matmul_flops / (matmul / 1e6) if matmul else float("nan")}


def measure_likelihood(model: ModMLLMForCausalLM, batch: dict, new_tokens: int, rounds: int,
                       answer_tokens: int = 3) -> dict:
    """Greedy answers and answer likelihoods, as a benchmark scored by both metrics wants them: the
    cached generation then a teacher-forced forward of prompt + answer (before), against both from
    one prefill (after)."""
    generator = torch.Generator().manual_seed(1)
    answers = torch.randint(5, model.config.vocab_size, (batch["input_ids"].shape[0], answer_tokens),
                            generator=generator)

    def before() -> torch.Tensor:
        with torch.no_grad():
            model.generate_greedy(batch["input_ids"], batch["pixel_values"], max_new_tokens=new_tokens, eos_token_id=-1)
            whole = torch.cat([batch["input_ids"], answers], dim=1)
            logits = model(whole, batch["pixel_values"]).logits[:, batch["input_ids"].shape[1] - 1 : -1]
            return torch.exp(torch.log_softmax(logits.float(), -1).gather(-1, answers[..., None]).mean((1, 2)))

    def after() -> torch.Tensor:
        with torch.no_grad():
            return model.generate_greedy(batch["input_ids"], batch["pixel_values"], max_new_tokens=new_tokens,
                                         eos_token_id=-1, answers=answers)[1]

    difference = float((before() - after()).abs().max())
    seconds = interleaved_seconds({"before": before, "after": after}, rounds)
    size = batch["input_ids"].shape[0]
    return {"answer_tokens": answer_tokens, "max_abs_difference": difference,
            "samples_per_s": {name: size / s for name, s in seconds.items()},
            "speedup": seconds["before"] / seconds["after"]}


def measure_hf(batch_size: int, new_tokens: int, rounds: int) -> dict:
    """The same comparison for the ``hf`` backend: a random LLaVA (CLIP 32 px, patch 4: 64 vision
    tokens; Llama hidden 256, 8 layers, like the demo's model) routed by the PRD schedule, through
    transformers' generate() with and without dmo's per-layer cache."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    from dmo.models.hf_routing import attach_routers
    from dmo.models.schedules import retention_schedule

    vocab, image_id, pad_id, eos_id = 512, 4, 0, 2
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                                       image_size=32, patch_size=4),
        text_config=LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=688, num_hidden_layers=8,
                                num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                                pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=1),
        image_token_index=image_id, vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    retention = retention_schedule("prd_shifted_cosine", 8)
    attach_routers(model, retention, vision_token_ids=[image_id], tanh_alpha=0.2, tanh_beta=1.0)
    n_vis = (32 // 4) ** 2
    generator = torch.Generator().manual_seed(0)
    text = torch.randint(5, vocab, (batch_size, TEXT_TOKENS), generator=generator)
    input_ids = torch.cat([torch.ones(batch_size, 1, dtype=torch.long), torch.full((batch_size, n_vis), image_id), text], 1)
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
             "pixel_values": torch.rand(batch_size, 3, 32, 32, generator=generator) * 2 - 1}

    def generate(use_cache: bool) -> torch.Tensor:
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                 use_cache=use_cache, pad_token_id=pad_id, eos_token_id=eos_id, suppress_tokens=[image_id])
        return out[:, input_ids.shape[1]:]

    same = bool(torch.equal(generate(True), generate(False)))
    seconds = interleaved_seconds({"uncached": lambda: generate(False), "cached": lambda: generate(True)}, rounds)
    return {"batch": batch_size, "prompt_tokens": int(input_ids.shape[1]), "identical_tokens": same,
            "retention": list(retention), "samples_per_s": {name: batch_size / s for name, s in seconds.items()},
            "speedup": seconds["uncached"] / seconds["cached"],
            "likelihood": measure_hf_likelihood(model, batch, new_tokens, rounds, image_id=image_id, pad_id=pad_id,
                                                eos_id=eos_id)}


def measure_hf_likelihood(model, batch: dict, new_tokens: int, rounds: int, *, image_id: int, pad_id: int,
                          eos_id: int, answer_tokens: int = 3) -> dict:
    """Both metrics through the hf backend: generate() then a teacher-forced forward of prompt + answer
    (before), against the likelihood from generate()'s own cache (after, dmo.models.hf_scoring)."""
    from dmo.models.hf_scoring import generate_with_likelihood

    size = batch["input_ids"].shape[0]
    answers = torch.randint(5, model.config.text_config.vocab_size, (size, answer_tokens),
                            generator=torch.Generator().manual_seed(1))
    answer_mask = torch.ones_like(answers, dtype=torch.bool)

    def before() -> torch.Tensor:
        with torch.no_grad():
            model.generate(**batch, max_new_tokens=new_tokens, do_sample=False, use_cache=True, pad_token_id=pad_id,
                           eos_token_id=eos_id, suppress_tokens=[image_id])
            whole = torch.cat([batch["input_ids"], answers], dim=1)
            logits = model(input_ids=whole, attention_mask=torch.ones_like(whole),
                           pixel_values=batch["pixel_values"]).logits[:, batch["input_ids"].shape[1] - 1 : -1]
            return torch.exp(torch.log_softmax(logits.float(), -1).gather(-1, answers[..., None]).mean((1, 2)))

    def after() -> torch.Tensor:
        return generate_with_likelihood(model, batch, answers, answer_mask, max_new_tokens=new_tokens, eos_id=eos_id,
                                        pad_id=pad_id, suppress=[image_id])[1]

    difference = float((before() - after()).abs().max())
    seconds = interleaved_seconds({"before": before, "after": after}, rounds)
    return {"answer_tokens": answer_tokens, "max_abs_difference": difference,
            "samples_per_s": {name: size / s for name, s in seconds.items()},
            "speedup": seconds["before"] / seconds["after"]}


def markdown(report: dict) -> str:
    sps, frac, limit = report["samples_per_s"], report["fraction_of_limit"], report["limit_flops_per_s"]
    return "\n".join([
        (f"Greedy generation of {report['new_tokens']} tokens for {report['batch']} prompts of "
         f"{report['prompt_tokens']} tokens ({report['config']}{_width(report)}, {report['threads']} threads); cached and "
         f"uncached tokens identical: {report['identical_tokens']}."),
        *comparison_table(("re-run the prefix every token", sps["uncached"]), ("per-layer KV cache", sps["cached"])),
        f"Speed-up **{report['speedup']:.2f}×** (target ≥ 4×: {'met' if report['met']['speedup >= 4'] else 'not met'}).",
        (f"Cached path: {report['achieved_flops_per_s'] / 1e9:.2f} GFLOP/s of useful work, "
         f"{100 * frac['prefill']:.0f} % of the prefill-shape matmul limit ({limit['prefill'] / 1e9:.1f} GFLOP/s) and "
         f"{100 * frac['decode']:.0f} % of the decode-shape one ({limit['decode'] / 1e9:.1f} GFLOP/s); "
         f"target ≥ 50 %: {'met' if report['met']['fraction of the prefill-shape limit >= 0.5'] else 'not met'}."),
        *_breakdown_lines(report.get("breakdown"), limit["prefill"]),
        *_likelihood_lines(report.get("likelihood")),
        *_hf_lines(report.get("hf")),
    ])


def _width(report: dict) -> str:
    return f" widened to hidden {report['hidden']}" if report.get("widened") else ""


def _breakdown_lines(breakdown: dict | None, limit: float) -> list[str]:
    if breakdown is None:
        return []
    return [
        "",
        (f"What limits it (torch.profiler, one cached generation): matmuls take "
         f"{100 * breakdown['matmul_share']:.0f} % of the time and do {100 * breakdown['matmul_flops_share']:.0f} % "
         f"of the counted FLOPs, at {breakdown['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s "
         f"({100 * breakdown['matmul_flops_per_s'] / limit:.0f} % of the prefill-shape limit: the decode steps' "
         f"matmuls multiply one token per row); attention {100 * breakdown['attention_share']:.0f} %, "
         f"everything else (norms, rotary, gathers, cache appends) {100 * breakdown['other_share']:.0f} %."),
    ]


def _likelihood_lines(likelihood: dict | None, title: str = "Both metrics") -> list[str]:
    if likelihood is None:
        return []
    sps = likelihood["samples_per_s"]
    return [
        "",
        (f"{title} (greedy answer and the likelihood of a {likelihood['answer_tokens']}-token reference "
         f"answer), as a benchmark scored by exact match and likelihood wants them; likelihoods equal to "
         f"{likelihood['max_abs_difference']:.1e}:"),
        *comparison_table(("cached generation, then a teacher-forced forward of prompt + answer", sps["before"]),
                          ("the likelihood from the generation's own prefill", sps["after"])),
        f"Speed-up **{likelihood['speedup']:.2f}×**.",
    ]


def _hf_lines(hf: dict | None) -> list[str]:
    if hf is None:
        return []
    sps = hf["samples_per_s"]
    return [
        "",
        (f"`hf` backend: a random LLaVA (hidden 256, 8 layers, PRD-routed, 64 vision tokens) through transformers' "
         f"generate(), {hf['batch']} prompts of {hf['prompt_tokens']} tokens; cached and uncached tokens identical: "
         f"{hf['identical_tokens']}."),
        *comparison_table(("uncached: the routed forward over the whole sequence every token", sps["uncached"]),
                          ("each routed layer caching its kept tokens", sps["cached"])),
        f"Speed-up **{hf['speedup']:.2f}×**.",
        *_likelihood_lines(hf.get("likelihood"), "`hf` backend, both metrics"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, help="widen the config's model to this hidden size (no hf part)")
    parser.add_argument("--quick", action="store_true", help="batch 16, 2 rounds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch, rounds = (16, 2) if args.quick else (args.batch, args.rounds)
    report = measure(args.config, batch, args.new_tokens, rounds, args.hidden)
    if args.hidden is None:
        report["hf"] = measure_hf(batch, args.new_tokens, rounds)
    return emit(report, args.json, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
