"""Decoder building blocks of the MoD MLLM (nanoGPT order): RMSNorm → rotary → attention → SwiGLU.

Shapes: B batch, n tokens, d hidden, h heads, hd head dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dmo.models.configuration_mod_mllm import ModMLLMConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


def rotary_cos_sin(
    position_ids: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE tables for the given positions, computed on the fly (no buffers to load or save)."""
    inv_freq = 1.0 / theta ** (
        torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim
    )  # (hd/2,)
    angles = position_ids.float()[..., None] * inv_freq  # (B, T, hd/2)
    emb = torch.cat([angles, angles], dim=-1)[:, None]  # (B, 1, T, hd)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + _rotate_half(x) * sin  # (B, h, n, hd)


def causal_padding_mask(key_valid: torch.Tensor) -> torch.Tensor:
    """(B, n) validity → (B, 1, n, n) bool, True where query i may attend key j.

    Causal in the given (original) order, padding keys hidden; every query may
    attend itself so padding rows never softmax over nothing (no NaNs).
    """
    n = key_valid.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=key_valid.device).tril()  # (n, n)
    diagonal = torch.eye(n, dtype=torch.bool, device=key_valid.device)
    return causal & (key_valid[:, None, None, :] | diagonal)  # (B, 1, n, n)


@dataclass
class LayerCache:
    """One decoder layer's keys and values for generation: only the tokens that layer processed.

    A routed layer caches its kept tokens (p-MoD's KV saving), so each layer's cache has its own
    length; ``key_valid`` marks padding among them (left-padded prompts).
    """

    keys: torch.Tensor | None = None  # (B, h, n, hd), rotary applied
    values: torch.Tensor | None = None  # (B, h, n, hd)
    key_valid: torch.Tensor | None = None  # (B, n) bool

    def extend(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.keys = keys if self.keys is None else torch.cat([self.keys, keys], dim=2)
        self.values = values if self.values is None else torch.cat([self.values, values], dim=2)
        return self.keys, self.values


class Attention(nn.Module):
    def __init__(self, config: ModMLLMConfig):
        super().__init__()
        d = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(
        self,
        x: torch.Tensor,  # (B, n, d)
        cos: torch.Tensor,  # (B, 1, n, hd)
        sin: torch.Tensor,
        allowed: torch.Tensor,  # (B, 1, n, n + cached) bool
        output_attentions: bool = False,
        cache: LayerCache | None = None,  # given: this call's keys are appended and all of them attended
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, n, d = x.shape
        q = self.q_proj(x).view(B, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, n, hd)
        k = self.k_proj(x).view(B, n, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, n, self.num_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.extend(k, v)  # (B, h, cached + n, hd)
        probs = None
        if output_attentions:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, h, n, n)
            probs = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
            y = probs @ v  # (B, h, n, hd)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        y = y.transpose(1, 2).reshape(B, n, d)
        return self.o_proj(y), probs


class SwiGLU(nn.Module):
    def __init__(self, config: ModMLLMConfig):
        super().__init__()
        d, d_ff = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(d, d_ff, bias=False)
        self.up_proj = nn.Linear(d, d_ff, bias=False)
        self.down_proj = nn.Linear(d_ff, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
