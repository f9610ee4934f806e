"""The MoD MLLM: a tiny LLaVA-shaped model whose decoder is a Mixture-of-Depths.

Reads bottom-up, nanoGPT style: RMSNorm → rotary → attention → SwiGLU MLP →
vision tower → projector → token selection → MoD decoder layer → model →
causal LM. Shapes: B batch, T sequence, n kept tokens, d hidden, h heads.

p-MoD in one paragraph (formulas in shared/DESIGN.md): a routed layer scores
every token with a zero-initialised `Linear(d, 1)` router, turns the score
into a weight `g = α·tanh(r) + β` (TanhNorm), keeps the top
`k = ⌊n_vis·ρ_l⌋` vision tokens by `g` plus every text and padding token, and
runs attention + MLP on those only (original positions for RoPE, causal among
themselves). Kept vision tokens scale their MLP output by `g`, skipped vision
tokens become `g·x` (STRing), so the router learns from every vision token.
With a zero router `g = 1` and a layer with ρ = 1 is exactly the dense layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from dmo.models.configuration_mod_mllm import ModMLLMConfig
from dmo.models.schedules import kept_vision_tokens

# --------------------------------------------------------------------------- building blocks


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
        allowed: torch.Tensor,  # (B, 1, n, n) bool
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, n, d = x.shape
        q = self.q_proj(x).view(B, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, n, hd)
        k = self.k_proj(x).view(B, n, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, n, self.num_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
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


# --------------------------------------------------------------------------- vision side


class VisionAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, P, D = x.shape
        qkv = self.qkv(x).view(B, P, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, heads, P, D/heads), bidirectional
        return self.proj(y.transpose(1, 2).reshape(B, P, D))


class VisionMLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class VisionBlock(nn.Module):
    """Pre-norm ViT block."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = VisionAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = VisionMLP(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTower(nn.Module):
    """A small ViT: conv patch embedding + learned positions + pre-norm blocks."""

    def __init__(self, config: ModMLLMConfig):
        super().__init__()
        dim, p = config.vision_hidden_size, config.patch_size
        self.image_size = config.image_size
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=p, stride=p)
        self.position_embedding = nn.Parameter(torch.zeros(1, config.num_image_tokens, dim))
        self.blocks = nn.ModuleList(
            VisionBlock(dim, config.vision_heads) for _ in range(config.vision_layers)
        )
        self.post_norm = nn.LayerNorm(dim)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if tuple(pixel_values.shape[-3:]) != (3, self.image_size, self.image_size):
            raise ValueError(
                f"pixel_values must be (B, 3, {self.image_size}, {self.image_size}), "
                f"got {tuple(pixel_values.shape)}"
            )
        x = self.patch_embed(pixel_values)  # (B, D, H/p, W/p)
        x = x.flatten(2).transpose(1, 2) + self.position_embedding  # (B, P, D), row-major patches
        for block in self.blocks:
            x = block(x)
        return self.post_norm(x)  # (B, P, D)


class Projector(nn.Module):
    """LLaVA-1.5's two-layer MLP from vision width to decoder width."""

    def __init__(self, config: ModMLLMConfig):
        super().__init__()
        self.linear_1 = nn.Linear(config.vision_hidden_size, config.hidden_size)
        self.linear_2 = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(features)))  # (B, P, d)


# --------------------------------------------------------------------------- Mixture-of-Depths


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


class ModDecoderLayer(nn.Module):
    def __init__(self, config: ModMLLMConfig, retention: float, routed: bool | None = None):
        super().__init__()
        self.retention = retention
        self.tanh_alpha, self.tanh_beta = config.tanh_alpha, config.tanh_beta
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = SwiGLU(config)
        # Only layers that drop tokens get a router; `routed` forces it for tests.
        routed = retention < 1.0 if routed is None else routed
        self.router = TokenRouter(config.hidden_size) if routed else None

    def _block(
        self,
        x: torch.Tensor,  # (B, n, d)
        cos: torch.Tensor,  # (B, 1, n, hd)
        sin: torch.Tensor,
        allowed: torch.Tensor,  # (B, 1, n, n)
        output_attentions: bool,
        mlp_scale: torch.Tensor | None = None,  # (B, n): g on kept vision tokens, 1 elsewhere
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h, probs = self.self_attn(self.input_layernorm(x), cos, sin, allowed, output_attentions)
        u = x + h  # (B, n, d)
        m = self.mlp(self.post_attention_layernorm(u))
        if mlp_scale is not None:
            m = m * mlp_scale[..., None]
        return u + m, probs

    def forward(
        self, x: torch.Tensor, inputs: DecoderInputs, output_attentions: bool = False,
        output_routing: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, LayerRouting | None]:  # fmt: skip
        n_vis = inputs.num_vision
        if self.router is None:
            y, probs = self._block(x, inputs.cos, inputs.sin, inputs.allowed, output_attentions)
            routing = None
            if output_routing:
                routing = LayerRouting(
                    self.retention, n_vis, n_vis, torch.ones_like(inputs.key_valid), None, None
                )
            return y, probs, routing

        d = x.shape[-1]
        k = kept_vision_tokens(n_vis, self.retention)
        gate = self.tanh_alpha * torch.tanh(self.router(x)) + self.tanh_beta  # (B, T)
        kept = select_kept_tokens(gate, inputs.vision_mask, n_vis, k)  # (B, n)
        hd = inputs.cos.shape[-1]
        cos = inputs.cos.gather(2, kept[:, None, :, None].expand(-1, 1, -1, hd))  # (B, 1, n, hd)
        sin = inputs.sin.gather(2, kept[:, None, :, None].expand(-1, 1, -1, hd))
        x_kept = x.gather(1, kept[..., None].expand(-1, -1, d))  # (B, n, d)
        vision_kept = inputs.vision_mask.gather(1, kept)  # (B, n)
        allowed = causal_padding_mask(inputs.key_valid.gather(1, kept))  # (B, 1, n, n)
        mlp_scale = torch.where(vision_kept, gate.gather(1, kept), torch.ones_like(x_kept[..., 0]))
        y_kept, probs = self._block(x_kept, cos, sin, allowed, output_attentions, mlp_scale)
        # Skipped vision tokens become g·x; text rows are overwritten by the scatter below.
        skip_scale = torch.where(inputs.vision_mask, gate, torch.ones_like(gate))  # (B, T)
        y = (x * skip_scale[..., None]).scatter(1, kept[..., None].expand(-1, -1, d), y_kept)

        routing = None
        if output_routing:
            kept_mask = torch.zeros_like(inputs.vision_mask).scatter(1, kept, True)
            vision_gates = gate.detach()[inputs.vision_mask]
            mean_gate = float(vision_gates.mean()) if vision_gates.numel() else None
            routing = LayerRouting(self.retention, n_vis, k, kept_mask, gate.detach(), mean_gate)
        return y, probs, routing


# --------------------------------------------------------------------------- models


@dataclass
class ModMLLMModelOutput(ModelOutput):
    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    routing: tuple[LayerRouting, ...] | None = None


@dataclass
class ModMLLMCausalLMOutput(ModelOutput):
    """`attentions[l]` is (B, h, n_l, n_l) over the tokens layer l kept (all tokens when dense)."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    routing: tuple[LayerRouting, ...] | None = None


class ModMLLMPreTrainedModel(PreTrainedModel):
    config_class = ModMLLMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = ["ModDecoderLayer", "VisionBlock"]
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # transformers' init helpers skip tensors already loaded from a checkpoint.
        std = self.config.initializer_range
        if isinstance(module, TokenRouter):  # before nn.Linear: routers start at zero so g = β
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, (RMSNorm, nn.LayerNorm)):
            init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, VisionTower):
            init.normal_(module.position_embedding, mean=0.0, std=std)


class ModMLLMModel(ModMLLMPreTrainedModel):
    def __init__(self, config: ModMLLMConfig):
        super().__init__(config)
        self.vision_tower = VisionTower(config)
        self.projector = Projector(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            ModDecoderLayer(config, retention) for retention in config.layer_retention()
        )
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def embed(
        self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Token embeddings with the `<image>` positions replaced by projected patches, in order."""
        cfg = self.config
        embeds = self.embed_tokens(input_ids)  # (B, T, d)
        vision_mask = input_ids == cfg.image_token_id  # (B, T)
        counts = vision_mask.sum(dim=1)
        if pixel_values is None:
            if bool(counts.any()):
                raise ValueError("input_ids hold <image> tokens but pixel_values is None")
            return embeds, vision_mask, 0
        n_img = cfg.num_image_tokens
        if bool((counts != n_img).any()):
            raise ValueError(
                f"every sample needs exactly {n_img} <image> tokens (id {cfg.image_token_id}), "
                f"got {counts.tolist()}"
            )
        features = self.projector(self.vision_tower(pixel_values.to(embeds.dtype)))  # (B, P, d)
        embeds = embeds.masked_scatter(vision_mask[..., None], features)
        return embeds, vision_mask, n_img

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T)
        pixel_values: torch.Tensor | None = None,  # (B, 3, H, W)
        attention_mask: torch.Tensor | None = None,  # (B, T), 1 = token, 0 = padding
        position_ids: torch.Tensor | None = None,  # (B, T)
        output_attentions: bool = False,
        output_routing: bool = False,
        output_hidden_states: bool = False,
    ) -> ModMLLMModelOutput:
        cfg = self.config
        B, T = input_ids.shape
        if T > cfg.max_position_embeddings:
            raise ValueError(
                f"sequence of {T} tokens exceeds max_position_embeddings={cfg.max_position_embeddings}"
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if position_ids is None:  # left padding: the first real token sits at position 0
            position_ids = (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
        x, vision_mask, n_vis = self.embed(input_ids, pixel_values)
        key_valid = attention_mask.bool()
        cos, sin = rotary_cos_sin(position_ids, cfg.head_dim, cfg.rope_theta, x.dtype)
        inputs = DecoderInputs(vision_mask, key_valid, cos, sin, causal_padding_mask(key_valid), n_vis)

        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        routing = [] if output_routing else None
        for layer in self.layers:
            x, probs, layer_routing = layer(x, inputs, output_attentions, output_routing)
            if hidden_states is not None:
                hidden_states.append(x)
            if attentions is not None:
                attentions.append(probs)
            if routing is not None:
                routing.append(layer_routing)
        return ModMLLMModelOutput(
            last_hidden_state=self.norm(x),
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
            attentions=tuple(attentions) if attentions is not None else None,
            routing=tuple(routing) if routing is not None else None,
        )


class ModMLLMForCausalLM(ModMLLMPreTrainedModel):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}  # only if tie_word_embeddings

    def __init__(self, config: ModMLLMConfig):
        super().__init__(config)
        self.model = ModMLLMModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T)
        pixel_values: torch.Tensor | None = None,  # (B, 3, H, W)
        attention_mask: torch.Tensor | None = None,  # (B, T)
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,  # (B, T), aligned with input_ids, -100 = ignore
        output_attentions: bool = False,
        output_routing: bool = False,
        output_hidden_states: bool = False,
    ) -> ModMLLMCausalLMOutput:
        """Logits (B, T, V); with labels, the mean next-token loss (labels shift inside, HF style)."""
        out = self.model(
            input_ids, pixel_values, attention_mask, position_ids,
            output_attentions=output_attentions, output_routing=output_routing,
            output_hidden_states=output_hidden_states,
        )  # fmt: skip
        logits = self.lm_head(out.last_hidden_state)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                labels[:, 1:].reshape(-1),
                ignore_index=-100,
            )
        return ModMLLMCausalLMOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states,
            attentions=out.attentions, routing=out.routing,
        )  # fmt: skip

    @torch.no_grad()
    def generate_greedy(
        self,
        input_ids: torch.Tensor,  # (B, T), LEFT-padded
        pixel_values: torch.Tensor | None,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 8,
        eos_token_id: int | None = None,
    ) -> torch.Tensor:
        """Greedy answers (B, ≤ max_new_tokens); rows that finished are filled with padding.

        No KV cache: each step re-runs the whole left-padded prefix, which at
        ~80 tokens costs little and keeps the MoD routing of every step exactly
        that of the training forward.
        """
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        pad = self.config.pad_token_id if self.config.pad_token_id is not None else eos
        B = input_ids.shape[0]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if not bool(attention_mask[:, -1].all()):
            raise ValueError("generate_greedy needs left-padded inputs (the last column must be real tokens)")
        finished = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
        new_tokens: list[torch.Tensor] = []
        for _ in range(max_new_tokens):
            logits = self(input_ids, pixel_values, attention_mask).logits[:, -1]  # (B, V)
            # An emitted <image> would break the next step's vision-token count: never pick it.
            logits[:, self.config.image_token_id] = float("-inf")
            token = logits.argmax(-1).masked_fill(finished, pad)  # (B,)
            new_tokens.append(token)
            if eos is not None:
                finished |= token == eos
            if bool(finished.all()):
                break
            input_ids = torch.cat([input_ids, token[:, None]], dim=1)
            attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)
        if not new_tokens:
            return input_ids.new_zeros(B, 0)
        return torch.stack(new_tokens, dim=1)


__all__ = [
    "LayerRouting",
    "ModDecoderLayer",
    "ModMLLMCausalLMOutput",
    "ModMLLMForCausalLM",
    "ModMLLMModel",
    "ModMLLMPreTrainedModel",
    "select_kept_tokens",
]
