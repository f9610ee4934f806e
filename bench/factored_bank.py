"""LoRA experts as factors vs dense task vectors: evaluator memory and proxy build time, side by side.

A Qwen2-VL-2B-shaped language model (hidden 1536, MLP 8960, 12 query and 2 key/value heads of
128, 28 layers, vocabulary 151,936, tied embeddings; its config.json), random weights, K experts
with LoRA r 16 on every linear layer of the decoder. Both banks are built
from the same experts — the dense one from each expert folded (what peft's merge_and_unload
saves) — and build the same proxy: the script checks they agree, then times them.

Measured: ``--layers`` decoder layers at full width (default 2; the dense bank of 28 layers does
not fit in 24 GiB), embeddings left out of both banks. Memory: what each bank adds to the model
(``nbytes``: the dense bank its θ0 copy and K task vectors; the factored bank its factors, since it
refers to the model's own base tensors). Time: switching the evaluator to the next proxy (the
factored bank sets column weights for its forward hooks; the dense bank writes θ(w) in one pass),
and the matrix work of one forward over 512 tokens through the adapted layers, hooked vs merged. Computed from the banks' layouts
(the same formulas as their ``nbytes``), for the whole 2B model (28 layers + embeddings): what each
evaluator would hold. The base is stored in bfloat16 and merged in float32, as the issue asks.

    python bench/factored_bank.py                 # K = 4 and 16, 2 layers
    python bench/factored_bank.py --layers 4 --ks 4 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dmo.merging.adapters import LoraExpert, LoraFactors
from dmo.merging.bank import TaskVectorBank
from dmo.merging.banks import folded
from dmo.merging.factored import FactoredBank

HIDDEN, MLP, HEADS, KV_HEADS, HEAD_DIM, LAYERS, VOCAB = 1536, 8960, 12, 2, 128, 28, 151_936
RANK, ALPHA = 16, 32.0
PREFIX = "model.language_model.layers"


def matrices(layer: int) -> dict[str, tuple[int, int]]:
    """(d_out, d_in) of every linear layer LoRA adapts in one decoder layer."""
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    shapes = {"self_attn.q_proj": (q, HIDDEN), "self_attn.k_proj": (kv, HIDDEN), "self_attn.v_proj": (kv, HIDDEN),
              "self_attn.o_proj": (HIDDEN, q), "mlp.gate_proj": (MLP, HIDDEN), "mlp.up_proj": (MLP, HIDDEN),
              "mlp.down_proj": (HIDDEN, MLP)}
    return {f"{PREFIX}.{layer}.{name}.weight": shape for name, shape in shapes.items()}


def base_state(layers: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    state = {}
    for layer in range(layers):
        for name, shape in matrices(layer).items():
            state[name] = (0.02 * torch.randn(shape, generator=generator)).to(torch.bfloat16)
        state[f"{PREFIX}.{layer}.router.weight"] = torch.zeros(1, HIDDEN, dtype=torch.bfloat16)
        state[f"{PREFIX}.{layer}.router.bias"] = torch.zeros(1, dtype=torch.bfloat16)
        for norm in ("input_layernorm", "post_attention_layernorm"):
            state[f"{PREFIX}.{layer}.{norm}.weight"] = torch.ones(HIDDEN, dtype=torch.bfloat16)
    return state


def expert(index: int, layers: int, generator: torch.Generator) -> LoraExpert:
    factors = {name: LoraFactors(a=0.01 * torch.randn(RANK, d_in, generator=generator),
                                 b=0.01 * torch.randn(d_out, RANK, generator=generator), scale=ALPHA / RANK)
               for layer in range(layers) for name, (d_out, d_in) in matrices(layer).items()}
    full = {f"{PREFIX}.{layer}.router.{p}": 0.01 * torch.randn(shape, generator=generator)
            for layer in range(layers) for p, shape in (("weight", (1, HIDDEN)), ("bias", (1,)))}
    return LoraExpert(name=f"expert{index}", factors=factors, full=full)


class OneAtATime:
    """Folded experts made one at a time as the dense bank reads them (K of them at once would not fit)."""

    def __init__(self, makers):
        self.makers = makers

    def __len__(self) -> int:
        return len(self.makers)

    def __iter__(self):
        return (make() for make in self.makers)


def median_seconds(build, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        build()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# Language models of the example configs (their config.json): hidden, MLP, query heads, key/value heads,
# head size, layers, vocabulary, embeddings tied to the output layer, parameters trained in full beside LoRA
# (LLaVA's two-layer projector from CLIP-L's 1024 features; Qwen2-VL merges inside its frozen vision tower).
LAYOUTS = {
    "qwen2-vl-2b": (1536, 8960, 12, 2, 128, 28, 151_936, True, 0),
    "llava-1.5-7b": (4096, 11008, 32, 32, 128, 32, 32_064, False, 1024 * 4096 + 4096 + 4096 * 4096 + 4096),
}


def computed_bytes(k: int, layout: str = "qwen2-vl-2b") -> dict[str, float]:
    """Evaluator memory for a whole language model, from the banks' layouts (GiB), routers on every layer."""
    hidden, mlp, heads, kv_heads, head_dim, layers, vocab, tied, projector = LAYOUTS[layout]
    q, kv = heads * head_dim, kv_heads * head_dim
    shapes = [(q, hidden), (kv, hidden), (kv, hidden), (hidden, q), (mlp, hidden), (mlp, hidden), (hidden, mlp)]
    adapted = sum(o * i for o, i in shapes) * layers
    factor_numbers = sum(o + i for o, i in shapes) * layers * RANK
    full = projector + layers * (hidden + 1)  # trained in full: projector, routers
    other = vocab * hidden * (1 if tied else 2) + layers * 2 * hidden + hidden  # embeddings, norms: kept
    params = adapted + other + full
    gib = 2**30
    model = 4 * params  # the proxy model itself, float32 (the evaluator merges in float32)
    return {
        "model_float32": model / gib,
        # dense: θ0 float32 + K task vectors over every merged tensor (zero where LoRA left it alone)
        "dense_float32": (model + 4 * params + 4 * k * params) / gib,
        "dense_bfloat16": (model + 4 * params + 2 * k * params) / gib,
        # factored: the model is the base (never written); the bank adds the factors and a dense bank over what
        # was trained in full (its base copy and K deltas)
        "factored": (model + 4 * k * factor_numbers + 4 * (k + 1) * full) / gib,
    }


def print_computed(ks: list[int]) -> None:
    print("| model | K | proxy model (fp32) | + dense bank fp32 | + dense bank bf16 | + factored bank |")
    print("|---|---|---:|---:|---:|---:|")
    for layout in LAYOUTS:
        for k in ks:
            c = computed_bytes(k, layout)
            print(f"| {layout} | {k} | {c['model_float32']:.1f} | {c['dense_float32']:.1f} | "
                  f"{c['dense_bfloat16']:.1f} | {c['factored']:.1f} |")


TOKENS = 512  # tokens per forward in the side-by-side forward timing (one prompt batch's worth)


def linear_stack(weights: dict[str, torch.Tensor]) -> nn.Module:
    """The decoder's adapted linear layers as modules named like the model's (``…q_proj``), sharing ``weights``."""
    root = nn.Module()
    for name, weight in weights.items():
        *path, leaf = name.removesuffix(".weight").split(".")
        parent = root
        for part in path:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        linear.weight = nn.Parameter(weight, requires_grad=False)
        parent.add_module(leaf, linear)
    return root


def forward_all(model: nn.Module, names: list[str], inputs: dict[int, torch.Tensor]) -> list[torch.Tensor]:
    """Every adapted layer on TOKENS tokens (its own input width): the matrix work of one forward."""
    with torch.no_grad():
        return [model.get_submodule(n.removesuffix(".weight"))(inputs[model.get_parameter(n).shape[1]]) for n in names]


def measure(base: dict[str, torch.Tensor], k: int, layers: int, repeats: int, generator: torch.Generator) -> dict:
    # The adapted matrices only (routers are d + 1 numbers a layer, nothing to measure).
    base = {n: t for n, t in base.items() if n.endswith("_proj.weight")}
    experts = [LoraExpert(e.name, e.factors, {}) for e in (expert(i, layers, generator) for i in range(k))]
    factored = FactoredBank(base, experts, exclude=())  # refers to base's tensors, which the hooked model shares
    dense = TaskVectorBank.from_state_dicts(base, OneAtATime([lambda e=e: folded(base, e) for e in experts]),
                                            exclude=())
    weights = [1.0 / k] * k
    names = [m.name for m in factored.matrices]
    hooked = linear_stack({n: base[n] for n in names})
    factored.bind(hooked)
    merged_state = dense.merged_state_dict(weights)
    plain = linear_stack({n: merged_state[n].clone() for n in names})  # the dense proxy, written
    inputs = {width: torch.randn(TOKENS, width, generator=generator) for width in (HIDDEN, MLP, HEADS * HEAD_DIM)}
    factored.load_into(hooked, weights)
    error = max(float((a - b).abs().max()) for a, b in zip(forward_all(hooked, names, inputs),
                                                            forward_all(plain, names, inputs)))
    flat = torch.empty(dense.num_params)
    dense.merged_flat(weights, out=flat)  # warm-up: first-touch pages, BLAS threads
    row = {
        "k": k, "layers": layers, "tokens": TOKENS, "max_abs_difference": error,
        "factored_bytes": factored.nbytes, "dense_bytes": dense.nbytes,
        # switching the evaluator to the next proxy: set column weights vs one pass over the dense bank
        "factored_switch_s": median_seconds(lambda: factored.load_into(hooked, weights), repeats),
        "dense_switch_s": median_seconds(lambda: dense.merged_flat(weights, out=flat), repeats),
        # the matrix work of one forward over TOKENS tokens: hooked (base + low-rank) vs the merged weights
        "factored_forward_s": median_seconds(lambda: forward_all(hooked, names, inputs), repeats),
        "dense_forward_s": median_seconds(lambda: forward_all(plain, names, inputs), repeats),
        "computed_2b_gib": computed_bytes(k),
    }
    row["memory_ratio"] = row["factored_bytes"] / row["dense_bytes"]
    row["forward_ratio"] = row["factored_forward_s"] / row["dense_forward_s"]
    return row


def run(layers: int, ks: list[int], repeats: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    base = {n: t.float() for n, t in base_state(layers, generator).items()}
    rows = [measure(base, k, layers, repeats, generator) for k in ks]
    return {"threads": torch.get_num_threads(), "rank": RANK, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--computed-only", action="store_true", help="Only the evaluator GiB from the layouts.")
    args = parser.parse_args()
    if args.computed_only:
        print_computed(args.ks)
        return
    result = run(args.layers, args.ks, args.repeats)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"Qwen2-VL-2B-shaped decoder, {args.layers} of {LAYERS} layers measured, LoRA r {RANK}, "
          f"{result['threads']} threads")
    print("| K | bank adds, factored MiB | dense MiB | memory | next proxy, factored s | dense s | "
          f"forward of {TOKENS} tokens, factored s | dense s | forward | max |Δ| |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in result["rows"]:
        print(f"| {r['k']} | {r['factored_bytes'] / 2**20:,.0f} | {r['dense_bytes'] / 2**20:,.0f} | "
              f"{r['memory_ratio']:.3f} | {r['factored_switch_s']:.5f} | {r['dense_switch_s']:.3f} | "
              f"{r['factored_forward_s']:.3f} | {r['dense_forward_s']:.3f} | {r['forward_ratio']:.2f} | "
              f"{r['max_abs_difference']:.1e} |")
    print("\nComputed from the layouts for whole language models, evaluator GiB:")
    print_computed(args.ks)

if __name__ == "__main__":
    main()
