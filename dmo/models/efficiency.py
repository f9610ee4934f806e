"""What a Mixture-of-Depths model saves: FLOPs and KV-cache accounting (pure math).

Counts the language decoder only: the vision tower and projector run the same
on every image whether the decoder routes or not, so they cancel in the ratio
against the dense model (the reported 55.6% TFLOPs / 53.8% KV cache are
decoder numbers too). Per layer, with `n_l = n_text + k_l` processed tokens:

    FLOPs_l ≈ 2·n_l·(4d² + 3·d·d_ff)   (q, k, v, o and SwiGLU matmuls)
            + 4·n_l²·d                  (scores and weighted sum)
    KV_l    ∝ n_l                       (one key and one value per kept token)

Routers (d FLOPs per token) and norms are left out; they are noise at this size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dmo.models.configuration_mod_mllm import ModMLLMConfig
from dmo.models.schedules import kept_vision_tokens


@dataclass(frozen=True)
class LayerCost:
    layer: int
    retention: float
    kept_vision: int  # k_l
    tokens: int  # n_l = n_text + k_l
    flops: int
    kv_entries: int  # tokens whose key and value this layer caches


@dataclass(frozen=True)
class ForwardCost:
    """Decoder cost of one sample's forward pass."""

    n_text: int
    n_vis: int
    layers: tuple[LayerCost, ...]

    @property
    def total_flops(self) -> int:
        return sum(layer.flops for layer in self.layers)

    @property
    def total_kv_entries(self) -> int:
        return sum(layer.kv_entries for layer in self.layers)

    @property
    def retention(self) -> tuple[float, ...]:
        return tuple(layer.retention for layer in self.layers)

    @property
    def tokens(self) -> tuple[int, ...]:
        return tuple(layer.tokens for layer in self.layers)


@dataclass(frozen=True)
class EfficiencyReport:
    """A MoD model's cost against the dense model of the same shape."""

    mod: ForwardCost
    dense: ForwardCost

    @property
    def flops_ratio(self) -> float:
        return self.mod.total_flops / self.dense.total_flops

    @property
    def kv_ratio(self) -> float:
        return self.mod.total_kv_entries / self.dense.total_kv_entries

    def table(self) -> list[dict[str, float | int]]:
        """One row per layer: retention, kept tokens and the per-layer FLOPs ratio."""
        return [
            {
                "layer": mod.layer,
                "retention": mod.retention,
                "kept_vision": mod.kept_vision,
                "tokens": mod.tokens,
                "dense_tokens": dense.tokens,
                "flops_ratio": mod.flops / dense.flops,
            }
            for mod, dense in zip(self.mod.layers, self.dense.layers, strict=True)
        ]


def layer_flops(n_tokens: int, hidden_size: int, intermediate_size: int) -> int:
    d, d_ff = hidden_size, intermediate_size
    return 2 * n_tokens * (4 * d * d + 3 * d * d_ff) + 4 * n_tokens * n_tokens * d


def decoder_cost(
    retention: Sequence[float], hidden_size: int, intermediate_size: int, n_text: int, n_vis: int,
    frames: int | None = None,
) -> ForwardCost:
    """Per-layer cost; ``frames``: the layers keep ⌈ρ·n⌉ of each frame's n tokens (VideoLLM-MoD)."""
    if n_text < 0 or n_vis < 0:
        raise ValueError(f"token counts must be >= 0, got n_text={n_text}, n_vis={n_vis}")
    layers = []
    for index, rho in enumerate(retention):
        k = kept_vision_tokens(n_vis, rho, frames=frames)
        n = n_text + k
        layers.append(LayerCost(index, rho, k, n, layer_flops(n, hidden_size, intermediate_size), n))
    return ForwardCost(n_text, n_vis, tuple(layers))


def forward_cost(config: ModMLLMConfig, n_text: int, n_vis: int) -> ForwardCost:
    """Decoder cost of `config`'s model on a sample with `n_text` text and `n_vis` vision tokens."""
    frames = config.routing_frames if n_vis == config.num_image_tokens else None
    return decoder_cost(
        config.layer_retention(), config.hidden_size, config.intermediate_size, n_text, n_vis, frames
    )


def efficiency_vs_dense(config: ModMLLMConfig, n_text: int, n_vis: int) -> EfficiencyReport:
    dense_retention = (1.0,) * config.num_hidden_layers
    return EfficiencyReport(
        mod=forward_cost(config, n_text, n_vis),
        dense=decoder_cost(dense_retention, config.hidden_size, config.intermediate_size, n_text, n_vis),
    )


def probe_batch(
    config: ModMLLMConfig, batch_size: int, n_text: int = 16, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random inputs shaped like an encoded sample: `[BOS] <image>×n_img text…`.

    For timing and ARank when no data is at hand; the token ids avoid the
    special ids so only the `<image>` positions are vision tokens.
    """
    generator = torch.Generator().manual_seed(seed)
    n_img = config.num_image_tokens
    special = {config.image_token_id, config.pad_token_id, config.bos_token_id, config.eos_token_id}
    allowed = torch.tensor([t for t in range(config.vocab_size) if t not in special])
    text = allowed[torch.randint(len(allowed), (batch_size, n_text), generator=generator)]
    parts = [torch.full((batch_size, n_img), config.image_token_id), text]
    if config.bos_token_id is not None:
        parts.insert(0, torch.full((batch_size, 1), config.bos_token_id))
    input_ids = torch.cat(parts, dim=1)
    side = config.image_size
    frames = (config.num_frames,) if config.num_frames > 1 else ()
    pixel_values = torch.rand(batch_size, *frames, 3, side, side, generator=generator) * 2 - 1  # [-1, 1]
    return {
        "input_ids": input_ids,
        "pixel_values": pixel_values,
        "attention_mask": torch.ones_like(input_ids),
    }
