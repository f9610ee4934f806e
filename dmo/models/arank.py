"""ARank (γ-MoD): how redundant a layer's attention is, to choose layers to route.

Per head, the numerical rank of the causal attention map with its diagonal
zeroed (a token attending to itself says nothing about token mixing),
averaged over heads and samples. A low-rank map means the layer mixes tokens
in few distinct ways; γ-MoD turns such layers into MoD layers first.

Padding needs no cropping: a padding query only attends itself (zeroed) and
no real query attends a padding key, so padding adds zero rows and columns,
which do not change the rank.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def attention_map_rank(attn: torch.Tensor, rtol: float | None = None) -> float:
    """Mean numerical rank of attention maps (..., n, n) after keeping the strict lower triangle.

    `rtol`: singular values below `rtol·σ_max` count as zero; None uses
    torch.linalg.matrix_rank's default (σ_max·n·eps of float32), i.e. the
    rank up to float32 noise.
    """
    if attn.dim() < 2 or attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"attention maps must be (..., n, n), got {tuple(attn.shape)}")
    strict_lower = torch.tril(attn.float(), diagonal=-1)
    if strict_lower.numel() == 0:
        return 0.0
    ranks = torch.linalg.matrix_rank(strict_lower, rtol=rtol)  # (...)
    return float(ranks.float().mean())


def layer_aranks(
    model: torch.nn.Module, batch: Mapping[str, torch.Tensor], rtol: float | None = None
) -> list[float]:
    """ARank of every decoder layer of `model` on `batch`, shallow to deep.

    Runs the model as it is: for a MoD model a routed layer's map covers the
    tokens it kept, so ARank is measured on kept tokens (measure a dense
    model to choose which layers to route).
    """
    with torch.no_grad():
        out = model(**batch, output_attentions=True)
    return [attention_map_rank(attn, rtol) for attn in out.attentions]  # each (B, h, n_l, n_l)


def layers_to_route(aranks: Sequence[float], n: int) -> list[int]:
    """Indices (ascending) of the `n` layers with the lowest ARank; ties go to the deeper layer.

    Deeper layers win ties because they attend vision tokens more
    redundantly (the premise of PRD), so routing them costs less accuracy.
    """
    if not 0 <= n <= len(aranks):
        raise ValueError(f"n must lie in [0, {len(aranks)}], got {n}")
    order = sorted(range(len(aranks)), key=lambda layer: (aranks[layer], -layer))
    return sorted(order[:n])
