"""Samples → model inputs: an encoded split, and the batches training and evaluation cut from it.

A domain's split is encoded once (`EncodedSplit`): prompt token ids (the
image placeholders already expanded), answer token ids (the answer and the
end of the turn) and the images as the model wants them. Training batches
are right-padded with labels only on the answer; generation batches are
left-padded prompts. How a sample becomes a prompt is the model backend's
(`dmo.models.backends`): dmo's own model uses the layout below, a Hugging
Face checkpoint its own tokenizer, processor and chat template.

    mod_mllm:  [BOS] <image>×n_img question [SEP] answer [EOS]   (n_img = frames × patches)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast

from dmo.data.sample import Sample
from dmo.data.tokenizer import IMAGE
from dmo.errors import DataError

IGNORE = -100


class ImageInputs(Protocol):
    """A split's images in the form the model takes; ``select`` gives a batch's keyword arguments."""

    def select(self, indices: Sequence[int]) -> dict[str, torch.Tensor]: ...

    def groups(self, indices: Sequence[int]) -> list[list[int]]:
        """``indices`` in runs of samples with the same count of vision tokens, each in its given order:
        a routed layer keeps one count per row, so a batch runs as one forward per run."""
        ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class StackedImages:
    """One (3, H, W) tensor per sample (dmo's model, LLaVA): ``pixel_values`` (B, 3, H, W)."""

    pixel_values: torch.Tensor  # (N, 3, H, W), or (N, F, 3, H, W) in a video model
    # In a video model, which samples are videos (the others are images as still clips): a routed
    # layer under VideoLLM-MoD's schedule routes a video within each frame, an image by PRD.
    videos: tuple[bool, ...] = ()

    def select(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = list(indices)
        batch = {"pixel_values": self.pixel_values[rows]}
        if self.videos:
            batch["video_rows"] = torch.tensor([self.videos[i] for i in rows], dtype=torch.bool)
        return batch

    def groups(self, indices: Sequence[int]) -> list[list[int]]:
        """Videos apart from images in a video model (they keep different counts); else one run."""
        if not self.videos:
            return [list(indices)]
        runs: dict[bool, list[int]] = {}
        for i in indices:
            runs.setdefault(self.videos[i], []).append(i)
        return list(runs.values())

    def __len__(self) -> int:
        return self.pixel_values.shape[0]

    @staticmethod
    def concat(parts: Sequence[StackedImages]) -> StackedImages:
        videos = tuple(v for part in parts for v in (part.videos or (False,) * len(part)))
        return StackedImages(torch.cat([p.pixel_values for p in parts]), videos if any(p.videos for p in parts) else ())


@dataclass(frozen=True)
class PatchedImages:
    """Flattened patches of each image or video and its (t, h, w) grid (Qwen2-VL). A batch concatenates
    its images' patches (``pixel_values``) and stacks their grids (``image_grid_thw``); its videos go
    under ``pixel_values_videos`` and ``video_grid_thw``, each in row order, as the model reads them."""

    patches: tuple[torch.Tensor, ...]  # per sample (n_i, patch_dim)
    grids: torch.Tensor  # (N, 3)
    videos: tuple[bool, ...] = ()  # per sample: a video; () = none is

    def select(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = list(indices)
        videos = [r for r in rows if self.videos and self.videos[r]]
        images = [r for r in rows if not (self.videos and self.videos[r])]
        batch = {}
        for keys, chosen in ((("pixel_values", "image_grid_thw"), images),
                             (("pixel_values_videos", "video_grid_thw"), videos)):
            if chosen:
                batch[keys[0]] = torch.cat([self.patches[i] for i in chosen])
                batch[keys[1]] = self.grids[chosen]
        return batch

    def groups(self, indices: Sequence[int]) -> list[list[int]]:
        runs: dict[tuple[bool, int], list[int]] = {}
        for i in indices:
            runs.setdefault((bool(self.videos and self.videos[i]), self.patches[i].shape[0]), []).append(i)
        return list(runs.values())

    def __len__(self) -> int:
        return len(self.patches)

    @staticmethod
    def concat(parts: Sequence[PatchedImages]) -> PatchedImages:
        videos = tuple(v for part in parts for v in (part.videos or (False,) * len(part)))
        return PatchedImages(tuple(p for part in parts for p in part.patches), torch.cat([p.grids for p in parts]),
                             videos if any(videos) else ())


@dataclass(frozen=True)
class EncodedSplit:
    """A split as token ids and images, ready to be cut into batches."""

    prompts: list[list[int]]  # the prompt, image placeholders expanded, ending where the answer starts
    answers: list[list[int]]  # the answer and the end-of-turn token
    images: ImageInputs
    # Qwen2-VL locates images and videos by token type: (token id, type) pairs, e.g. image pad → 1,
    # video pad → 2; () = the model takes no token types.
    token_types: tuple[tuple[int, int], ...] = ()

    def __len__(self) -> int:
        return len(self.prompts)

    @staticmethod
    def concat(parts: Sequence[EncodedSplit]) -> EncodedSplit:
        images = type(parts[0].images).concat([p.images for p in parts])  # type: ignore[attr-defined]
        return EncodedSplit([x for p in parts for x in p.prompts], [x for p in parts for x in p.answers], images,
                            parts[0].token_types)


# --------------------------------------------------------------------------- dmo's own layout


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


def images_to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """(N, H, W, 3) images to (N, 3, H, W), or (N, F, H, W, 3) clips to (N, F, 3, H, W), in [-1, 1]."""
    array = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).movedim(-1, -3).contiguous()


def fit_images(samples: Sequence[Sample], size: int | None) -> list[Sample]:
    """Samples whose image (or every frame) is ``size``×``size``: others resized bilinearly, as
    ``read_jsonl`` resizes a user's images. What arrives from elsewhere (an lmms-eval task's
    documents) keeps its own size until here."""
    if size is None:
        return list(samples)
    from PIL import Image

    def fit(image: np.ndarray) -> np.ndarray:
        if image.shape[-3:-1] == (size, size):
            return image
        if image.ndim == 4:
            return np.stack([fit(frame) for frame in image])
        return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), dtype=np.uint8)

    return [s if s.image.shape[-3:-1] == (size, size) else replace(s, image=fit(s.image)) for s in samples]


def sample_pixels(samples: Sequence[Sample], num_frames: int) -> torch.Tensor:
    """What dmo's model reads of each sample: its image, or in a video model of ``num_frames`` frames its
    clip (an image becomes that many copies of itself, a still clip); a clip of another length is refused."""
    if num_frames == 1:
        for sample in samples:
            if sample.is_video:
                raise DataError(f"sample {sample.uid!r} is a video of {len(sample.frames)} frames, and the model "
                                "reads images", where=sample.source or f"domain {sample.domain}",
                                hint="set model.num_frames to the clips' frame count")
        return images_to_tensor([s.image for s in samples])
    clips = []
    for sample in samples:
        frames = sample.frames if sample.is_video else np.repeat(sample.image[None], num_frames, axis=0)
        if len(frames) != num_frames:
            raise DataError(f"sample {sample.uid!r} has {len(frames)} frames; the model reads {num_frames}",
                            where=sample.source or f"domain {sample.domain}",
                            hint="give every clip model.num_frames frames")
        clips.append(frames)
    return images_to_tensor(clips)


def encode_split(
    samples: Sequence[Sample], tokenizer: PreTrainedTokenizerFast, num_image_tokens: int, *,
    max_tokens: int | None = None, num_frames: int = 1, image_size: int | None = None,
) -> EncodedSplit:
    """dmo's own layout; with ``max_tokens``, a sample longer than the model's context is refused
    naming its file and line — before tokenizing text that cannot fit, which could take minutes."""
    ids = TokenIds.of(tokenizer)
    if max_tokens is not None:
        refuse_text_that_cannot_fit(samples, tokenizer, num_image_tokens, max_tokens)
    questions = tokenizer([s.question for s in samples], add_special_tokens=False)["input_ids"]
    answers = tokenizer([s.answer for s in samples], add_special_tokens=False)["input_ids"]
    split = EncodedSplit(
        prompts=[[ids.bos] + [ids.image] * num_image_tokens + q + [ids.sep] for q in questions],
        answers=[a + [ids.eos] for a in answers],
        images=StackedImages(sample_pixels(fit_images(samples, image_size), num_frames),
                             tuple(s.is_video for s in samples) if num_frames > 1 else ()),
    )
    if max_tokens is not None:
        check_lengths(samples, split, num_image_tokens, max_tokens)
    return split


# --------------------------------------------------------------------------- lengths


def refuse_text_that_cannot_fit(samples: Sequence[Sample], tokenizer: PreTrainedTokenizerFast,
                                num_image_tokens: int, max_tokens: int) -> None:
    # No token spans more bytes than the longest vocabulary entry, so text longer than this
    # many bytes needs more tokens than the context holds, whatever it says.
    longest = max((len(token.encode()) for token in tokenizer.get_vocab()), default=1)
    limit = max(0, max_tokens - num_image_tokens) * longest
    for sample in samples:
        size = len(sample.question.encode()) + len(sample.answer.encode())
        if size > limit:
            _too_long(sample, f"{size:,} bytes of text", num_image_tokens, max_tokens)


def check_lengths(samples: Sequence[Sample], split: EncodedSplit, num_image_tokens: int, max_tokens: int) -> None:
    for sample, prompt, answer in zip(samples, split.prompts, split.answers):
        if len(prompt) + len(answer) > max_tokens:
            _too_long(sample, f"{len(prompt) + len(answer)} tokens", num_image_tokens, max_tokens)


def _too_long(sample: Sample, length: str, num_image_tokens: int, max_tokens: int) -> None:
    raise DataError(
        f"sample {sample.uid!r} is too long: {length} with {num_image_tokens} image tokens, while the model "
        f"reads at most {max_tokens} tokens (model.max_position_embeddings)",
        where=sample.source or f"domain {sample.domain}",
        hint="raise model.max_position_embeddings in the config, or shorten the sample",
    )


# --------------------------------------------------------------------------- batches


def training_batch(split: EncodedSplit, indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt+answer sequences; the loss sees only the answer and its end of turn."""
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
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    return _with_images(split, indices, batch)


def prompt_batch(split: EncodedSplit, indices: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Left-padded prompts for greedy generation."""
    prompts = [split.prompts[i] for i in indices]
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(indices), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
        attention_mask[row, width - len(prompt) :] = 1
    return _with_images(split, indices, {"input_ids": input_ids, "attention_mask": attention_mask})


def answer_batch(split: EncodedSplit, indices: Sequence[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference answers (B, m), right-padded, and their mask (True on answer tokens)."""
    answers = [split.answers[i] for i in indices]
    width = max(len(a) for a in answers)
    ids = torch.full((len(answers), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(answers), width), dtype=torch.bool)
    for row, answer in enumerate(answers):
        ids[row, : len(answer)] = torch.tensor(answer)
        mask[row, : len(answer)] = True
    return ids, mask


def on_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A batch moved to the model's device (batches are cut on the CPU)."""
    if device.type == "cpu":
        return batch
    return {name: value.to(device, non_blocking=True) for name, value in batch.items()}


def _with_images(split: EncodedSplit, indices: Sequence[int], batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    batch.update(split.images.select(indices))
    if split.token_types:
        types = torch.zeros_like(batch["input_ids"])
        for token_id, token_type in split.token_types:
            types = types.masked_fill(batch["input_ids"] == token_id, token_type)
        batch["mm_token_type_ids"] = types
    return batch
