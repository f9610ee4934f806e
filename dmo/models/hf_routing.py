"""p-MoD routing on the decoder layers of a Hugging Face MLLM (LLaVA, Qwen2-VL).

A routed layer keeps its class's parameters and names: :func:`attach_routers`
adds a zero-initialised ``router`` child (``…layers.{i}.router.{weight,bias}``)
and swaps the layer's class for a subclass whose forward routes, so peft,
mergekit and ``save_pretrained`` see the usual names plus the routers. The
routed forward is p-MoD's (formulas in shared/DESIGN.md, the same as
:mod:`dmo.models.mod_layer`): TanhNorm gate ``g = α·tanh(r) + β`` on the layer
input, the top ``⌊n_vis·ρ⌋`` vision tokens by ``g`` plus every text token
attend and go through the MLP; kept vision tokens scale their MLP output by
``g`` and skipped ones become ``g·x`` (STRing). Kept tokens keep their
original RoPE: the layer's precomputed ``(cos, sin)`` are gathered along the
sequence, never recomputed from re-indexed positions — for Qwen2-VL that
keeps each token's multi-axis M-RoPE angles. With zero routers (``g = 1``)
and ρ = 1 a routed layer computes exactly what the original one does.

The vision tokens are found from the image token id in ``input_ids``, read by
a forward pre-hook on the top-level model (the decoder sees only embeddings).

Generation keeps a KV cache, as p-MoD does: in the prefill a routed layer caches the keys and
values of the tokens it kept, and remembers their positions; each decoding step (a text token,
which every layer keeps) attends to that layer's own cache, through the model's attention mask
gathered at the cached positions. Text is always kept and, by causality, nothing already cached
changes as tokens are appended, so this equals re-running the routed forward over the whole
sequence (tests/models/test_hf_backend.py). The model counts the tokens seen from the first
layer's cache, so cached generation needs that layer unrouted (every shipped schedule keeps it
dense); :func:`generation_caches` says whether it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dmo.models.mod_layer import LayerRouting, TokenRouter, select_kept_tokens
from dmo.models.schedules import kept_vision_tokens


@dataclass
class RoutingContext:
    """What every routed layer of one model needs for the current forward pass."""

    vision_token_ids: tuple[int, ...]  # image (and video) placeholder ids: the tokens routed layers may skip
    vision_mask: torch.Tensor | None = None  # (B, T) bool
    record: list[LayerRouting] | None = None  # filled when a caller asks how the layers routed
    layers: list[nn.Module] = field(default_factory=list)


def language_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a LLaVA- or Qwen2-VL-style model (``model.language_model.layers``)."""
    inner = getattr(model, "model", model)
    language = getattr(inner, "language_model", None)
    layers = getattr(language, "layers", None)
    if layers is None:
        raise TypeError(f"{type(model).__name__} has no model.language_model.layers to route")
    return layers


def attach_routers(model: nn.Module, retention: Sequence[float], *, vision_token_ids: Sequence[int],
                   tanh_alpha: float, tanh_beta: float) -> RoutingContext:
    """Route every layer with ρ < 1 (idempotent: a model routes once)."""
    existing = getattr(model, "_dmo_routing", None)
    if existing is not None:
        return existing
    layers = language_layers(model)
    if len(retention) != len(layers):
        raise ValueError(f"{len(retention)} retention values for {len(layers)} decoder layers")
    context = RoutingContext(vision_token_ids=tuple(int(i) for i in vision_token_ids))
    hidden = model.config.get_text_config().hidden_size
    for layer, rho in zip(layers, retention):
        if rho >= 1.0:
            continue
        reference = next(layer.parameters())
        router = TokenRouter(hidden).to(dtype=reference.dtype, device=reference.device)
        nn.init.zeros_(router.weight)
        nn.init.zeros_(router.bias)
        layer.router = router
        layer.__class__ = _routed_class(type(layer))
        layer.mod_retention, layer.tanh_alpha, layer.tanh_beta = float(rho), tanh_alpha, tanh_beta
        layer.dmo_context = context
        context.layers.append(layer)
    model._dmo_routing = context
    model.register_forward_pre_hook(_capture_vision_mask, with_kwargs=True)
    # Forwards (training, likelihood) need no cache; generation asks for one where it can
    # (:func:`generation_caches`).
    for config in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        config.use_cache = False
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.use_cache = False
    return context


def generation_caches(model: nn.Module) -> bool:
    """Whether generation may keep a KV cache: the first decoder layer is not routed (the model reads
    how many tokens it has seen from that layer's cache, which a routed layer keeps shorter)."""
    return not getattr(language_layers(model)[0], "dmo_context", None)


def _capture_vision_mask(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
    context: RoutingContext = module._dmo_routing
    input_ids = kwargs.get("input_ids", args[0] if args else None)
    if input_ids is None:
        context.vision_mask = None
        return
    ids = torch.tensor(context.vision_token_ids, device=input_ids.device)
    context.vision_mask = torch.isin(input_ids, ids)


_ROUTED: dict[type, type] = {}


def _routed_class(base: type) -> type:
    """``Routed<Layer>``: the layer's own class with p-MoD's forward (one subclass per class)."""
    if base not in _ROUTED:
        _ROUTED[base] = type(f"Routed{base.__name__}", (base,), {"forward": _routed_forward})
    return _ROUTED[base]


def _routed_forward(
    self: nn.Module,
    hidden_states: torch.Tensor,  # (B, T, d)
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    cache: Any = None,
    use_cache: bool | None = False,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    context: RoutingContext = self.dmo_context
    vision = context.vision_mask
    B, T, d = hidden_states.shape
    caching = cache is not None and bool(use_cache)
    if caching and getattr(self, "dmo_kept", None) is not None and cache.get_seq_length(self.self_attn.layer_idx) > 0:
        # A decoding step: this layer's cache holds its kept prompt tokens, then the generated ones.
        mask = _cached_mask(attention_mask, self.dmo_kept, self.dmo_prompt_length)
        return super(type(self), self).forward(hidden_states, attention_mask=mask, position_ids=position_ids,
                                                cache=cache, use_cache=use_cache,
                                                position_embeddings=position_embeddings, **kwargs)
    if vision is None or vision.shape != (B, T) or not bool(vision.any()):
        self.dmo_kept = None  # nothing routed: the cache, if any, holds every token
        return super(type(self), self).forward(hidden_states, attention_mask=attention_mask, position_ids=position_ids,
                                                cache=cache, use_cache=use_cache,
                                                position_embeddings=position_embeddings, **kwargs)
    counts = vision.sum(dim=1)
    n_vis = int(counts[0])
    if bool((counts != n_vis).any()):
        raise ValueError(f"every sample of a routed batch needs the same number of vision tokens, got {counts.tolist()}")
    k = kept_vision_tokens(n_vis, self.mod_retention)
    gate = self.tanh_alpha * torch.tanh(self.router(hidden_states)) + self.tanh_beta  # (B, T)
    kept = select_kept_tokens(gate, vision, n_vis, k)  # (B, n), ascending positions
    x = hidden_states.gather(1, kept[..., None].expand(-1, -1, d))  # (B, n, d)
    cos, sin = position_embeddings
    kept_rope = (_gather_sequence(cos, kept), _gather_sequence(sin, kept))
    mask = _kept_mask(attention_mask, kept, hidden_states, self.self_attn)
    # With a cache (a generation's prefill) the layer caches its kept tokens only, and remembers where they were.
    self.dmo_kept, self.dmo_prompt_length = (kept, T) if caching else (None, None)
    h, _ = self.self_attn(hidden_states=self.input_layernorm(x), attention_mask=mask, position_ids=None,
                          cache=cache if caching else None, position_embeddings=kept_rope, **kwargs)
    u = x + h
    vision_kept = vision.gather(1, kept)
    scale = torch.where(vision_kept, gate.gather(1, kept), torch.ones_like(gate.gather(1, kept)))
    y_kept = u + scale[..., None] * self.mlp(self.post_attention_layernorm(u))
    skip = torch.where(vision, gate, torch.ones_like(gate))  # skipped vision tokens become g·x
    y = (hidden_states * skip[..., None]).scatter(1, kept[..., None].expand(-1, -1, d), y_kept)
    if context.record is not None:
        kept_mask = torch.zeros_like(vision).scatter(1, kept, True)
        vision_gates = gate.detach()[vision]
        context.record.append(LayerRouting(self.mod_retention, n_vis, k, kept_mask, gate.detach(),
                                           float(vision_gates.mean()) if vision_gates.numel() else None))
    return y


def _gather_sequence(table: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Rows of a (B, T, …) table at the kept positions (B, n); a batch of one broadcasts."""
    if table.shape[0] == 1 and kept.shape[0] > 1:
        table = table.expand(kept.shape[0], *table.shape[1:])
    index = kept.view(*kept.shape, *([1] * (table.dim() - 2))).expand(-1, -1, *table.shape[2:])
    return table.gather(1, index)


def _kept_mask(mask: torch.Tensor | None, kept: torch.Tensor, hidden: torch.Tensor, attention: nn.Module) -> torch.Tensor:
    """The (B, 1, n, n) attention mask among the kept tokens, in the form the layer's mask has."""
    if mask is not None and mask.dim() == 4:
        rows = kept[:, None, :, None].expand(-1, mask.shape[1], -1, mask.shape[3])
        mask = mask.expand(kept.shape[0], -1, -1, -1).gather(2, rows)
        cols = kept[:, None, None, :].expand(-1, mask.shape[1], mask.shape[2], -1)
        return mask.gather(3, cols)
    n = kept.shape[1]
    allowed = torch.ones(n, n, dtype=torch.bool, device=kept.device).tril()[None, None]  # causal in original order
    if getattr(attention.config, "_attn_implementation", "sdpa") == "eager":
        zero = torch.zeros((), dtype=hidden.dtype, device=hidden.device)
        return torch.where(allowed, zero, torch.finfo(hidden.dtype).min)
    return allowed


def _cached_mask(mask: torch.Tensor | None, kept: torch.Tensor, prompt_length: int) -> torch.Tensor | None:
    """The model's mask for a decoding step (keys: every position so far) cut to this layer's cache: the
    kept prompt positions (B, n), then every position generated since."""
    if mask is None:
        return None
    total = mask.shape[-1]
    generated = torch.arange(prompt_length, total, device=kept.device).expand(kept.shape[0], -1)
    columns = torch.cat([kept, generated], dim=1)  # (B, n + generated)
    if mask.dim() == 2:
        return mask.gather(1, columns)
    mask = mask.expand(kept.shape[0], -1, -1, -1)
    return mask.gather(3, columns[:, None, None, :].expand(-1, mask.shape[1], mask.shape[2], -1))


def routing_of(model: nn.Module, run: Any) -> list[LayerRouting]:
    """How each routed layer routed during ``run()`` (a forward pass of ``model``)."""
    context: RoutingContext = model._dmo_routing
    context.record = []
    try:
        run()
        return list(context.record)
    finally:
        context.record = None


__all__ = ["RoutingContext", "attach_routers", "generation_caches", "language_layers", "routing_of"]
