"""The Hugging Face MLLM families the ``hf`` backend reads (LLaVA, Qwen2-VL), and how a checkpoint's own
config says which one it is. Read without loading any weights."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dmo.errors import CheckpointError


@dataclass(frozen=True)
class Architecture:
    """What differs between the supported model families."""

    name: str
    vision_prefix: str  # the frozen vision tower's parameters
    trained_in_full: tuple[str, ...]  # beside LoRA: routers and the projector
    patched_images: bool  # Qwen2-VL: flattened patches + grids; LLaVA: one (3, H, W) per image
    token_types: bool  # Qwen2-VL locates images and videos by mm_token_type_ids
    reads_video: bool  # Qwen2-VL: clips of frames (video_grid_thw); LLaVA: images only

    def image_tokens(self, config: Any, images: Mapping[str, torch.Tensor], processor: Any) -> int:
        """Vision tokens one image (or one video) becomes in the sequence."""
        if self.patched_images:
            merge = int(getattr(processor, "merge_size", 2))
            grid = images["video_grid_thw"] if "video_grid_thw" in images else images["image_grid_thw"]
            return int(grid[0].prod()) // (merge * merge)
        height, width = images["pixel_values"].shape[-2:]
        patch = config.vision_config.patch_size
        tokens = (height // patch) * (width // patch) + 1  # + CLIP's class token
        return tokens - 1 if getattr(config, "vision_feature_select_strategy", "default") == "default" else tokens


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("LlavaForConditionalGeneration", "model.vision_tower.", ("router", "multi_modal_projector"),
                     patched_images=False, token_types=False, reads_video=False),
        Architecture("Qwen2VLForConditionalGeneration", "model.visual.", ("router",), patched_images=True,
                     token_types=True, reads_video=True),
    )
}


def read_hf_config(path: Path) -> Any:
    from transformers import AutoConfig

    if not (path / "config.json").is_file():
        raise CheckpointError("no config.json: not a Hugging Face checkpoint directory", where=str(path))
    try:
        return AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (ValueError, OSError, KeyError) as error:
        raise CheckpointError(f"cannot read its config: {str(error).splitlines()[0]}", where=str(path)) from None


def architecture(config: Any, path: Path) -> Architecture:
    names = list(getattr(config, "architectures", None) or [])
    for name in names:
        if name in ARCHITECTURES:
            return ARCHITECTURES[name]
    raise CheckpointError(f"unsupported architecture {', '.join(names) or type(config).__name__}", where=str(path),
                          hint=f"supported: {', '.join(ARCHITECTURES)}")
