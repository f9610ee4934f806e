"""A Hugging Face checkpoint's tokenizer, image processor and chat template turned into dmo's encoded
splits, the way LLaMA-Factory would prompt the same samples (the ``hf`` backend's encoder)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmo.data.encoding import (
    EncodedSplit,
    PatchedImages,
    StackedImages,
    check_lengths,
    refuse_text_that_cannot_fit,
)
from dmo.data.sample import Sample
from dmo.errors import CheckpointError, DataError
from dmo.models.backends.hf_architectures import architecture, read_hf_config


def processor_chat_template(path: Path) -> str | None:
    """The processor-level chat template of checkpoints saved before transformers 5 (``chat_template.json``,
    as llava-hf's keep it), which the tokenizer does not load; ``chat_template.jinja`` it loads itself."""
    legacy = path / "chat_template.json"
    try:
        if legacy.is_file():
            template = json.loads(legacy.read_text(encoding="utf-8")).get("chat_template")
            return template if isinstance(template, str) and template else None
    except (OSError, ValueError, AttributeError) as error:
        raise CheckpointError(f"unreadable chat template: {error}", where=str(path)) from None
    return None


class HfEncoder:
    """A checkpoint's tokenizer, image processor and chat template, as LLaMA-Factory would use them."""

    def __init__(self, path: Path, image_size: int, max_tokens: int | None = None):
        from transformers import AutoImageProcessor, AutoTokenizer

        self.path = Path(path)
        config = read_hf_config(self.path)
        self.config, self.arch = config, architecture(config, self.path)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"no tokenizer in the checkpoint: {str(error).splitlines()[0]}", where=str(self.path),
                                  hint="save the tokenizer beside the model (tokenizer.json, tokenizer_config.json)") from None
        if not (self.path / "preprocessor_config.json").is_file():
            raise CheckpointError("no image processor in the checkpoint (preprocessor_config.json)", where=str(self.path),
                                  hint="save the processor beside the model (processor.save_pretrained)")
        self.processor = AutoImageProcessor.from_pretrained(str(self.path), local_files_only=True)
        if not self.tokenizer.chat_template:
            self.tokenizer.chat_template = processor_chat_template(self.path)
        if not self.tokenizer.chat_template:
            raise CheckpointError("neither the tokenizer nor the processor has a chat template", where=str(self.path),
                                  hint="save a chat template with the tokenizer or the processor (its turns make the prompts)")
        self.image_size = image_size
        self.image_token_id = int(config.image_token_id)
        self.image_token = self.tokenizer.convert_ids_to_tokens(self.image_token_id)
        video_id = getattr(config, "video_token_id", None) if self.arch.reads_video else None
        self.video_token_id = None if video_id is None else int(video_id)
        self.video_token = None if video_id is None else self.tokenizer.convert_ids_to_tokens(self.video_token_id)
        text = config.get_text_config()
        self.max_tokens = max_tokens or int(getattr(text, "max_position_embeddings", 0) or 0) or None
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise CheckpointError("the tokenizer has no end-of-sequence token", where=str(self.path))
        self.eos_id = int(eos)
        self.pad_id = int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos)

    def _images(self, sample: Sample) -> dict[str, torch.Tensor]:
        from PIL import Image

        if not sample.is_video:
            image = Image.fromarray(np.asarray(sample.image, dtype=np.uint8)).convert("RGB")
            return dict(self.processor(images=[image], return_tensors="pt"))
        if self.video_token_id is None:
            raise DataError(f"sample {sample.uid!r} is a video; {self.arch.name} reads images only",
                            where=sample.source or f"domain {sample.domain}",
                            hint="train video domains on a Qwen2-VL checkpoint or with the mod_mllm backend")
        from dmo.models.qwen2_vl_video import clip_patches

        frames = [Image.fromarray(np.asarray(f, dtype=np.uint8)).convert("RGB") for f in sample.frames]
        encoded = self.processor(images=frames, return_tensors="np")
        grid = np.asarray(encoded["image_grid_thw"])  # (F, 3): (1, h, w) per frame, all alike
        patches = np.asarray(encoded["pixel_values"]).reshape(len(frames), int(grid[0].prod()), -1)
        video, grid_t = clip_patches(patches, int(getattr(self.processor, "temporal_patch_size", 2)))
        return {"pixel_values_videos": torch.from_numpy(video),
                "video_grid_thw": torch.tensor([[grid_t, int(grid[0, 1]), int(grid[0, 2])]])}

    def _prompt(self, question: str, image_tokens: int, *, video: bool = False) -> list[int]:
        kind, token = ("video", self.video_token) if video else ("image", self.image_token)
        messages = [{"role": "user", "content": [{"type": kind}, {"type": "text", "text": question}]}]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if token not in text:
            raise CheckpointError(f"its chat template does not place the {kind} token {token!r}", where=str(self.path))
        text = text.replace(token, token * image_tokens, 1)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        bos = self.tokenizer.bos_token_id
        if bos is not None and (not ids or ids[0] != bos) and getattr(self.tokenizer, "add_bos_token", True):
            ids = [bos, *ids]
        return ids

    def encode(self, samples: Sequence[Sample]) -> EncodedSplit:
        if not samples:
            raise ValueError("no samples to encode")
        vision = [self._images(s) for s in samples]
        counts = [self.arch.image_tokens(self.config, v, self.processor) for v in vision]
        if self.max_tokens is not None:
            refuse_text_that_cannot_fit(samples, self.tokenizer, max(counts), self.max_tokens)
        prompts = [self._prompt(s.question, n, video=s.is_video) for s, n in zip(samples, counts)]
        answers = [self.tokenizer(s.answer, add_special_tokens=False)["input_ids"] + [self.eos_id] for s in samples]
        if self.arch.patched_images:
            videos = tuple(s.is_video for s in samples)
            images: Any = PatchedImages(
                tuple(v["pixel_values_videos" if is_video else "pixel_values"] for v, is_video in zip(vision, videos)),
                torch.cat([v["video_grid_thw" if is_video else "image_grid_thw"] for v, is_video in zip(vision, videos)]),
                videos if any(videos) else ())
        else:
            images = StackedImages(torch.cat([v["pixel_values"] for v in vision]))
        token_types: tuple[tuple[int, int], ...] = ()
        if self.arch.token_types:
            token_types = ((self.image_token_id, 1),) + (((self.video_token_id, 2),) if self.video_token_id is not None else ())
        split = EncodedSplit(prompts, answers, images, token_types)
        if self.max_tokens is not None:
            check_lengths(samples, split, max(counts), self.max_tokens)
        return split

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    def fingerprint(self) -> bytes:
        digest = [self.tokenizer.backend_tokenizer.to_str() if hasattr(self.tokenizer, "backend_tokenizer") else "",
                  self.tokenizer.chat_template or "", json.dumps(self.processor.to_dict(), sort_keys=True, default=str),
                  str(self.image_size)]
        return "\0".join(digest).encode()

    def save(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(directory)
        self.processor.save_pretrained(directory)

    save_pretrained = save  # what dmo.models.checkpoint.save_checkpoint calls
