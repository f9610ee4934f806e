"""Samples → model inputs, following the layout in docs/architecture.md.

    [BOS] <image>×n_img question [SEP] answer [EOS]

A domain's split is encoded once into tensors (`EncodedSplit`); training and
evaluation then only index into them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast

from dmo.data.sample import Sample
from dmo.data.tokenizer import IMAGE
from dmo.errors import DataError

IGNORE = -100


@dataclass(frozen=True)
class TokenIds:
    pad: int
    bos: int
    eos: int
    sep: int
    image: int

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerFast) -> TokenIds:
        return cls(
            pad=tokenizer.pad_token_id,
            bos=tokenizer.bos_token_id,
            eos=tokenizer.eos_token_id,
            sep=tokenizer.sep_token_id,
            image=tokenizer.convert_tokens_to_ids(IMAGE),
        )


@dataclass(frozen=True)
class EncodedSplit:
    """A split as tensors: images, prompts (left-aligned ids), answers."""

    pixel_values: torch.Tensor  # (N, 3, H, W) float32 in [-1, 1]
    prompts: list[list[int]]  # [BOS] <image>×n question [SEP]
    answers: list[list[int]]  # answer [EOS]

    def __len__(self) -> int:
        return len(self.prompts)


def images_to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    array = np.stack(images).astype(np.float32) / 127.5 - 1.0  # (N, H, W, 3)
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)


def encode_split(
    samples: Sequence[Sample], tokenizer: PreTrainedTokenizerFast, num_image_tokens: int, *,
    max_tokens: int | None = None,
) -> EncodedSplit:
    """Tokenize a split; with ``max_tokens``, a sample longer than the model's context is refused
    naming its file and line — before tokenizing text that cannot fit, which could take minutes."""
    ids = TokenIds.of(tokenizer)
    if max_tokens is not None:
        _refuse_text_that_cannot_fit(samples, tokenizer, num_image_tokens, max_tokens)
    questions = tokenizer([s.question for s in samples], add_special_tokens=False)["input_ids"]
    answers = tokenizer([s.answer for s in samples], add_special_tokens=False)["input_ids"]
    split = EncodedSplit(
        pixel_values=images_to_tensor([s.image for s in samples]),
        prompts=[[ids.bos] + [ids.image] * num_image_tokens + q + [ids.sep] for q in questions],
        answers=[a + [ids.eos] for a in answers],
    )
    if max_tokens is not None:
        for sample, prompt, answer in zip(samples, split.prompts, split.answers):
            if len(prompt) + len(answer) > max_tokens:
                _too_long(sample, f"{len(prompt) + len(answer)} tokens", num_image_tokens, max_tokens)
    return split


def _refuse_text_that_cannot_fit(samples: Sequence[Sample], tokenizer: PreTrainedTokenizerFast,
                                 num_image_tokens: int, max_tokens: int) -> None:
    # No token spans more bytes than the longest vocabulary entry, so text longer than this
    # many bytes needs more tokens than the context holds, whatever it says.
    longest = max((len(token.encode()) for token in tokenizer.get_vocab()), default=1)
    limit = max(0, max_tokens - num_image_tokens) * longest
    for sample in samples:
        size = len(sample.question.encode()) + len(sample.answer.encode())
        if size > limit:
            _too_long(sample, f"{size:,} bytes of text", num_image_tokens, max_tokens)


def _too_long(sample: Sample, length: str, num_image_tokens: int, max_tokens: int) -> None:
    raise DataError(
        f"sample {sample.uid!r} is too long: {length} with {num_image_tokens} image tokens, while the model "
        f"reads at most {max_tokens} tokens (model.max_position_embeddings)",
        where=sample.source or f"domain {sample.domain}",
        hint="raise model.max_position_embeddings in the config, or shorten the sample",
    )


def training_batch(split: EncodedSplit, indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt+answer sequences; the loss sees only the answer and [EOS]."""
    sequences = [split.prompts[i] + split.answers[i] for i in indices]
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    labels = torch.full((len(indices), width), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        prompt, answer = split.prompts[i], split.answers[i]
        n = len(prompt) + len(answer)
        input_ids[row, :n] = torch.tensor(prompt + answer)
        labels[row, len(prompt) : n] = torch.tensor(answer)
        attention_mask[row, :n] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "pixel_values": split.pixel_values[list(indices)],
    }


def prompt_batch(split: EncodedSplit, indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded prompts for greedy generation."""
    prompts = [split.prompts[i] for i in indices]
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
        attention_mask[row, width - len(prompt) :] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "pixel_values": split.pixel_values[list(indices)],
    }
