"""Greedy answers and reference-answer likelihoods of a transformers MLLM from one prefill.

A benchmark scored by both exact match and likelihood needs the model's greedy answer and the
likelihood of the reference answer. Scoring them apart runs the vision tower and the prompt twice.
Here ``generate()`` runs once; its cache is then cut back to the prompt (every layer, routed ones
included, appended the same decoding steps after its prompt entries) and the reference answer
runs through it as one continuation, placed where ``generate()`` places its decoding steps
(positions from the attention mask, Qwen2-VL's M-RoPE offsets included). The prompt's last
logits, which ``generate()`` returns, score the first answer token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


def generate_with_likelihood(model: nn.Module, batch: Mapping[str, torch.Tensor], answers: torch.Tensor,
                             answer_mask: torch.Tensor, *, max_new_tokens: int, eos_id: int, pad_id: int,
                             suppress: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy answers (B, ≤ max_new_tokens) and each row's exp(−mean NLL) of its right-padded
    ``answers`` (B, m) where ``answer_mask`` is true; the model must keep a cache while generating."""
    inputs = dict(batch)
    width = inputs["input_ids"].shape[1]
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max(1, max_new_tokens), do_sample=False, use_cache=True,
                             eos_token_id=eos_id, pad_token_id=pad_id, suppress_tokens=list(suppress),
                             return_dict_in_generate=True, output_logits=True)
        tokens = out.sequences[:, width : width + max_new_tokens]
        # Raw logits of the prompt's last position (before suppress_tokens) score the first answer token.
        logits = out.logits[0][:, None].float()  # (B, 1, V)
        cache = out.cache
        steps = cache.get_seq_length(0) - width  # decoding steps generate() ran after the prefill
        if steps > 0:
            cache.crop(-steps)
        if answers.shape[1] > 1:
            rest = _continuation_logits(model, cache, inputs, answers[:, :-1], answer_mask[:, :-1])
            logits = torch.cat([logits, rest.float()], dim=1)  # (B, m, V)
    picked = torch.log_softmax(logits, dim=-1).gather(-1, answers.clamp(min=0)[..., None]).squeeze(-1)  # (B, m)
    mask = answer_mask.to(picked.dtype)
    mean_nll = -(picked * mask).sum(1) / mask.sum(1).clamp(min=1)
    return tokens, torch.exp(-mean_nll)


def _continuation_logits(model: nn.Module, cache, inputs: Mapping[str, torch.Tensor], continuation: torch.Tensor,
                         continuation_mask: torch.Tensor) -> torch.Tensor:
    """Logits (B, n, V) after each continuation token, run on the prompt's cache."""
    mask = torch.cat([inputs["attention_mask"], continuation_mask.to(inputs["attention_mask"].dtype)], dim=1)
    ids = torch.cat([inputs["input_ids"], continuation], dim=1)
    kwargs = {"attention_mask": mask, "cache": cache, "input_ids": ids}
    if "mm_token_type_ids" in inputs:
        kwargs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(continuation)], dim=1)
    # generate()'s own placement of decoding steps (a private transformers hook, the one generate()
    # calls): 2-D text positions from the mask, and for Qwen2-VL those plus its stored rope deltas.
    positions = model._prepare_position_ids_for_generation(ids, kwargs)[..., -continuation.shape[1]:]
    return model(input_ids=continuation, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True).logits


__all__ = ["generate_with_likelihood"]
