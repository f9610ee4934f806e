"""Mixture-of-Depths routing (p-MoD): the router, token selection and the routed decoder layer.

A routed layer scores every token with a zero-initialised `Linear(d, 1)`
router, turns the score into a weight `g = α·tanh(r) + β` (TanhNorm), keeps
the top `k = ⌊n_vis·ρ_l⌋` vision tokens by `g` plus every text and padding
token, and runs attention + MLP on those only (original positions for RoPE,
causal among themselves). Kept vision tokens scale their MLP output by `g`,
skipped vision tokens become `g·x` (STRing), so the router learns from every
vision token. With a zero router `g = 1` and a layer with ρ = 1 is exactly
the dense layer. Under VideoLLM-MoD's schedule (`video_per_frame`) a video's
vision tokens compete within their own frame: each frame keeps its ⌈r·n⌉. Shapes: B batch, T sequence, n kept tokens, d hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dmo.models.configuration_mod_mllm import ModMLLMConfig
from dmo.models.layers import Attention, LayerCache, RMSNorm, SwiGLU, causal_padding_mask
from dmo.models.schedules import PER_FRAME_SCHEDULES, kept_per_frame, kept_vision_tokens


class TokenRouter(nn.Linear):
    """Linear(d, 1) scoring tokens for a routed layer; its own class so init can zero it."""

    def __init__(self, dim: int):
        super().__init__(dim, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).squeeze(-1)  # (B, T)


def select_kept_tokens(
    gate: torch.Tensor, vision_mask: torch.Tensor, num_vision: int, num_keep: int
) -> torch.Tensor:
    """Indices (B, T − num_vision + num_keep) of the tokens a routed layer processes, ascending.

    Every row holds exactly `num_vision` vision tokens, so every row keeps the
    same number of tokens and the gather has a fixed shape. Non-vision tokens
    score +inf and are always kept; among vision tokens the highest gate wins,
    ties (a zero router) go to the earliest position (stable sort), so the
    selection is deterministic.
    """
    T = gate.shape[1]
    score = gate.detach().masked_fill(~vision_mask, float("inf"))  # (B, T)
    order = torch.sort(score, dim=1, descending=True, stable=True).indices
    return order[:, : T - num_vision + num_keep].sort(dim=1).values


def select_kept_tokens_per_frame(
    gate: torch.Tensor, vision_mask: torch.Tensor, frames: int, keep_per_frame: int
) -> torch.Tensor:
    """Like :func:`select_kept_tokens`, but the vision tokens compete within their frame only
    (VideoLLM-MoD): each row's vision tokens are ``frames`` consecutive runs of equal length, in
    order, and each run keeps its ``keep_per_frame`` highest gates (ties to the earliest)."""
    B, T = gate.shape
    vision_positions = vision_mask.nonzero()[:, 1].view(B, -1)  # (B, n_vis), ascending: frame after frame
    n_vis = vision_positions.shape[1]
    patches = n_vis // frames
    by_frame = gate.detach().gather(1, vision_positions).view(B, frames, patches)
    order = torch.sort(by_frame, dim=2, descending=True, stable=True).indices[..., :keep_per_frame]
    kept_vision = vision_positions.view(B, frames, patches).gather(2, order).view(B, -1)
    text_positions = (~vision_mask).nonzero()[:, 1].view(B, T - n_vis)
    return torch.cat([text_positions, kept_vision], dim=1).sort(dim=1).values


@dataclass(frozen=True)
class LayerRouting:
    """How one decoder layer routed a batch (for logging and tests)."""

    retention: float
    num_vision: int  # vision tokens per sample
    kept_vision: int  # k_l, the same for every sample
    kept_mask: torch.Tensor  # (B, T) bool, tokens the layer processed
    gate: torch.Tensor | None  # (B, T) g = α·tanh(r) + β, None in dense layers
    mean_gate: float | None  # mean g over vision tokens, None in dense layers


@dataclass
class DecoderInputs:
    """What every decoder layer needs besides the hidden states; built once per forward."""

    vision_mask: torch.Tensor  # (B, T) bool
    key_valid: torch.Tensor  # (B, T) bool, False on padding
    cos: torch.Tensor  # (B, 1, T, hd)
    sin: torch.Tensor
    allowed: torch.Tensor  # (B, 1, T, T) bool
    num_vision: int
    frames: int = 1  # vision tokens per sample = frames consecutive runs of equal length (a video's frames)
    videos: bool = True  # the rows are videos (a video model's images are still clips, routed as images)


class ModDecoderLayer(nn.Module):
    def __init__(self, config: ModMLLMConfig, retention: float, routed: bool | None = None, *,
                 image_retention: float | None = None):
        super().__init__()
        self.retention = retention
        # Under VideoLLM-MoD's schedule, images (still clips) keep PRD's share of the whole sample.
        self.image_retention = retention if image_retention is None else image_retention
        self.tanh_alpha, self.tanh_beta = config.tanh_alpha, config.tanh_beta
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = SwiGLU(config)
        # VideoLLM-MoD's schedule routes within each frame; every other schedule within the whole sample.
        self.per_frame = config.mod_schedule in PER_FRAME_SCHEDULES
        # Only layers that drop tokens get a router; `routed` forces it for tests.
        routed = min(retention, self.image_retention) < 1.0 if routed is None else routed
        self.router = TokenRouter(config.hidden_size) if routed else None

    def _block(
        self,
        x: torch.Tensor,  # (B, n, d)
        cos: torch.Tensor,  # (B, 1, n, hd)
        sin: torch.Tensor,
        allowed: torch.Tensor,  # (B, 1, n, n)
        output_attentions: bool,
        mlp_scale: torch.Tensor | None = None,  # (B, n): g on kept vision tokens, 1 elsewhere
        cache: LayerCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h, probs = self.self_attn(self.input_layernorm(x), cos, sin, allowed, output_attentions, cache)
        u = x + h  # (B, n, d)
        m = self.mlp(self.post_attention_layernorm(u))
        if mlp_scale is not None:
            m = m * mlp_scale[..., None]
        return u + m, probs

    def forward(
        self, x: torch.Tensor, inputs: DecoderInputs, output_attentions: bool = False,
        output_routing: bool = False, cache: LayerCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, LayerRouting | None]:  # fmt: skip
        """The layer over a whole sequence; with an empty ``cache``, it keeps the keys and values of
        the tokens this layer processed (a prefill for :meth:`decode`)."""
        n_vis = inputs.num_vision
        if self.router is None:
            if cache is not None:
                cache.key_valid = inputs.key_valid
            y, probs = self._block(x, inputs.cos, inputs.sin, inputs.allowed, output_attentions, cache=cache)
            routing = None
            if output_routing:
                routing = LayerRouting(
                    self.retention, n_vis, n_vis, torch.ones_like(inputs.key_valid), None, None
                )
            return y, probs, routing

        d = x.shape[-1]
        gate = self.tanh_alpha * torch.tanh(self.router(x)) + self.tanh_beta  # (B, T)
        per_frame = self.per_frame and inputs.videos
        retention = self.retention if per_frame or not self.per_frame else self.image_retention
        if per_frame and n_vis:
            k = kept_vision_tokens(n_vis, retention, frames=inputs.frames)
            kept = select_kept_tokens_per_frame(gate, inputs.vision_mask, inputs.frames,
                                                kept_per_frame(n_vis // inputs.frames, retention))
        else:
            k = kept_vision_tokens(n_vis, retention)
            kept = select_kept_tokens(gate, inputs.vision_mask, n_vis, k)  # (B, n)
        hd = inputs.cos.shape[-1]
        cos = inputs.cos.gather(2, kept[:, None, :, None].expand(-1, 1, -1, hd))  # (B, 1, n, hd)
        sin = inputs.sin.gather(2, kept[:, None, :, None].expand(-1, 1, -1, hd))
        x_kept = x.gather(1, kept[..., None].expand(-1, -1, d))  # (B, n, d)
        vision_kept = inputs.vision_mask.gather(1, kept)  # (B, n)
        allowed = causal_padding_mask(inputs.key_valid.gather(1, kept))  # (B, 1, n, n)
        mlp_scale = torch.where(vision_kept, gate.gather(1, kept), torch.ones_like(x_kept[..., 0]))
        if cache is not None:
            cache.key_valid = inputs.key_valid.gather(1, kept)
        y_kept, probs = self._block(x_kept, cos, sin, allowed, output_attentions, mlp_scale, cache)
        # Skipped vision tokens become g·x; text rows are overwritten by the scatter below.
        skip_scale = torch.where(inputs.vision_mask, gate, torch.ones_like(gate))  # (B, T)
        y = (x * skip_scale[..., None]).scatter(1, kept[..., None].expand(-1, -1, d), y_kept)

        routing = None
        if output_routing:
            kept_mask = torch.zeros_like(inputs.vision_mask).scatter(1, kept, True)
            vision_gates = gate.detach()[inputs.vision_mask]
            mean_gate = float(vision_gates.mean()) if vision_gates.numel() else None
            routing = LayerRouting(retention, n_vis, k, kept_mask, gate.detach(), mean_gate)
        return y, probs, routing

    def decode(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: LayerCache) -> torch.Tensor:
        """New text tokens (B, m, d), causal among themselves, against this layer's cache: one per
        generation step, or an answer's tokens scored after the prompt's prefill.

        Text is kept by every layer and, by causality, nothing before it changes as tokens are
        appended, so this equals the full forward's last rows (tests/models/test_modeling_mod_mllm.py).
        """
        B, m = x.shape[:2]
        previous = cache.key_valid  # (B, cached)
        cache.key_valid = torch.cat([previous, previous.new_ones(B, m)], dim=1)
        causal = torch.ones(m, m, dtype=torch.bool, device=x.device).tril()
        allowed = torch.cat([previous[:, None, None, :].expand(B, 1, m, -1), causal.expand(B, 1, m, m)], dim=-1)
        y, _ = self._block(x, cos, sin, allowed, output_attentions=False, cache=cache)
        return y
