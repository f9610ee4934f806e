"""The MoD MLLM: a tiny LLaVA-shaped model whose decoder is a Mixture-of-Depths.

Reads bottom-up across four files, nanoGPT style: :mod:`dmo.models.layers`
(RMSNorm → rotary → attention → SwiGLU), :mod:`dmo.models.vision` (ViT tower →
projector), :mod:`dmo.models.mod_layer` (router → token selection → MoD
decoder layer), and this file (model → causal LM → greedy generation).
Shapes: B batch, T sequence, d hidden, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from dmo.models.configuration_mod_mllm import ModMLLMConfig
from dmo.models.layers import LayerCache, RMSNorm, causal_padding_mask, rotary_cos_sin
from dmo.models.mod_layer import DecoderInputs, LayerRouting, ModDecoderLayer, TokenRouter
from dmo.models.vision import Projector, VisionTower


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
            ModDecoderLayer(config, retention, image_retention=image)
            for retention, image in zip(config.layer_retention(), config.image_layer_retention(), strict=True)
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
        pixel_values: torch.Tensor | None = None,  # (B, 3, H, W), or (B, F, 3, H, W) in a video model
        attention_mask: torch.Tensor | None = None,  # (B, T), 1 = token, 0 = padding
        position_ids: torch.Tensor | None = None,  # (B, T)
        output_attentions: bool = False,
        output_routing: bool = False,
        output_hidden_states: bool = False,
        caches: list[LayerCache] | None = None,  # one empty cache per layer: filled for decode()
        video_rows: torch.Tensor | None = None,  # (B,) bool in a video model: which rows are videos
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
        inputs = DecoderInputs(vision_mask, key_valid, cos, sin, causal_padding_mask(key_valid), n_vis, cfg.num_frames,
                               videos=_all_videos(video_rows))

        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        routing = [] if output_routing else None
        for index, layer in enumerate(self.layers):
            cache = caches[index] if caches is not None else None
            x, probs, layer_routing = layer(x, inputs, output_attentions, output_routing, cache)
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

    def decode(self, tokens: torch.Tensor, position: torch.Tensor, caches: list[LayerCache]) -> torch.Tensor:
        """The normed hidden states (B, m, d) of new text tokens (B,) or (B, m) per row, the first at
        ``position`` (B,), against (and appended to) every layer's cache."""
        cfg = self.config
        tokens = tokens[:, None] if tokens.dim() == 1 else tokens
        x = self.embed_tokens(tokens)  # (B, m, d)
        positions = position[:, None] + torch.arange(tokens.shape[1], device=tokens.device)
        cos, sin = rotary_cos_sin(positions, cfg.head_dim, cfg.rope_theta, x.dtype)
        for layer, cache in zip(self.layers, caches, strict=True):
            x = layer.decode(x, cos, sin, cache)
        return self.norm(x)


def _all_videos(video_rows: torch.Tensor | None) -> bool:
    """Whether a batch's rows are videos (None: no rows named, all are); a batch of both kinds is refused,
    because under VideoLLM-MoD's schedule they keep different counts (dmo.data.encoding groups them)."""
    if video_rows is None:
        return True
    videos = int(video_rows.sum())
    if 0 < videos < video_rows.numel():
        raise ValueError(f"a batch of {videos} videos and {video_rows.numel() - videos} images: run each kind "
                         "as its own forward (ImageInputs.groups)")
    return videos > 0


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
        video_rows: torch.Tensor | None = None,  # (B,) bool in a video model
    ) -> ModMLLMCausalLMOutput:
        """Logits (B, T, V); with labels, the mean next-token loss (labels shift inside, HF style)."""
        out = self.model(
            input_ids, pixel_values, attention_mask, position_ids,
            output_attentions=output_attentions, output_routing=output_routing,
            output_hidden_states=output_hidden_states, video_rows=video_rows,
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
        use_cache: bool = True,
        video_rows: torch.Tensor | None = None,
        answers: torch.Tensor | None = None,  # (B, m) reference answers, right-padded: scored from the prefill
        answer_mask: torch.Tensor | None = None,  # (B, m) bool, True on answer tokens
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Greedy answers (B, ≤ max_new_tokens); rows that finished are filled with padding.

        With ``use_cache`` the prompt runs once (vision tower included) and every layer keeps
        the keys and values of the tokens it processed — a routed layer only its kept vision
        tokens, as p-MoD does — so each new token costs one token's forward. Without it every
        step re-runs the whole prefix (the reference the cache is tested against).

        With ``answers`` (and a cache) it also returns each row's answer likelihood, exp(−mean NLL of
        its answer tokens), from the same prefill: the prompt's last logits score the first answer
        token, and the rest run as one continuation against copies of the caches, which generation
        then continues from untouched. Equal to a teacher-forced forward of prompt + answer, which by
        causality routes the prompt's vision tokens the same way (tests/models).
        """
        if answers is not None and not use_cache:
            raise ValueError("answers are scored from the cached prefill: use_cache must be True")
        eos = self.config.eos_token_id if eos_token_id is None else eos_token_id
        pad = self.config.pad_token_id if self.config.pad_token_id is not None else eos
        B = input_ids.shape[0]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if not bool(attention_mask[:, -1].all()):
            raise ValueError("generate_greedy needs left-padded inputs (the last column must be real tokens)")
        if max_new_tokens <= 0:
            return input_ids.new_zeros(B, 0)
        finished = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
        new_tokens: list[torch.Tensor] = []
        caches = [LayerCache() for _ in self.model.layers] if use_cache else None
        position = attention_mask.long().sum(dim=1)  # the next token's position (left padding)
        hidden = self.model(input_ids, pixel_values, attention_mask, caches=caches,
                            video_rows=video_rows).last_hidden_state[:, -1:]
        likelihood = None
        if answers is not None and caches is not None:
            mask = answer_mask if answer_mask is not None else torch.ones_like(answers, dtype=torch.bool)
            likelihood = self._answer_likelihood(hidden, caches, position, answers, mask)
        for step in range(max_new_tokens):
            logits = self.lm_head(hidden[:, -1])  # (B, V)
            # An emitted <image> would break the next step's vision-token count: never pick it.
            logits[:, self.config.image_token_id] = float("-inf")
            token = logits.argmax(-1).masked_fill(finished, pad)  # (B,)
            new_tokens.append(token)
            if eos is not None:
                finished |= token == eos
            if bool(finished.all()) or step == max_new_tokens - 1:
                break
            if caches is not None:  # the new token alone, against every layer's cache
                hidden = self.model.decode(token, position, caches)
                position = position + 1
            else:  # the whole sequence again
                input_ids = torch.cat([input_ids, token[:, None]], dim=1)
                attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)
                hidden = self.model(input_ids, pixel_values, attention_mask,
                                    video_rows=video_rows).last_hidden_state[:, -1:]
        tokens = torch.stack(new_tokens, dim=1)
        return tokens if answers is None else (tokens, likelihood)

    def _answer_likelihood(self, last: torch.Tensor, caches: list[LayerCache], position: torch.Tensor,
                           answers: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """exp(−mean NLL) of each row's answer tokens given its prompt; ``last`` (B, 1, d) is the
        prompt's last hidden state, ``caches`` its prefill (copied here, left as they were)."""
        hidden = last
        if answers.shape[1] > 1:
            forked = [LayerCache(c.keys, c.values, c.key_valid) for c in caches]
            hidden = torch.cat([last, self.model.decode(answers[:, :-1], position, forked)], dim=1)  # (B, m, d)
        logprobs = torch.log_softmax(self.lm_head(hidden).float(), dim=-1)
        picked = logprobs.gather(-1, answers[..., None]).squeeze(-1)  # (B, m)
        return torch.exp((picked * mask).sum(1) / mask.sum(1))


__all__ = [
    "LayerRouting",
    "ModMLLMCausalLMOutput",
    "ModMLLMForCausalLM",
    "ModMLLMModel",
    "ModMLLMPreTrainedModel",
]
