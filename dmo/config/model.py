"""The model section: dmo's own MoD MLLM or a local Hugging Face checkpoint, and the MoD schedule both use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from dmo.config.fields import MAX_IMAGE_SIZE, Frozen


class ModSettings(Frozen):
    """The efficiency settings of a Mixture-of-Depths model (p-MoD)."""

    schedule: Literal["prd_shifted_cosine", "constant", "linear", "explicit", "dense", "video_per_frame"] = Field(
        "prd_shifted_cosine", description="'video_per_frame' (VideoLLM-MoD): the first layer dense, each other layer "
                                          "keeps ⌈frame_retention·n⌉ of every frame's n vision tokens.")
    retention: tuple[float, ...] | None = Field(
        None, description="Per-layer vision-token retention; only with schedule 'explicit'."
    )
    constant: float = Field(0.5, gt=0, le=1, description="Retention of schedule 'constant'.")
    dense_above: float = Field(0.85, gt=0, le=1, description="Layers above this retention stay dense.")
    floor: float = Field(0.15, gt=0, le=1, description="Lowest retention a routed layer gets.")
    frame_retention: float = Field(0.2, gt=0, le=1, description="Share of each frame's vision tokens a routed layer "
                                                               "keeps under schedule 'video_per_frame' (r).")
    tanh_alpha: float = Field(0.2, gt=0, description="TanhNorm scale α in g = α·tanh(r) + β.")
    tanh_beta: float = Field(1.0, description="TanhNorm offset β.")

    @model_validator(mode="after")
    def _explicit_needs_retention(self) -> ModSettings:
        if (self.schedule == "explicit") != (self.retention is not None):
            raise ValueError("'retention' is given exactly when schedule is 'explicit'")
        if self.retention is not None and not all(0 < r <= 1 for r in self.retention):
            raise ValueError("every retention must lie in (0, 1]")
        return self


class ModMllmSettings(Frozen):
    """dmo's own tiny LLaVA-shaped MoD MLLM, built from config and trained from scratch (``mod_mllm``)."""

    backend: Literal["mod_mllm"] = "mod_mllm"
    image_size: int = Field(32, ge=8, le=MAX_IMAGE_SIZE)
    patch_size: int = Field(4, ge=1)
    vision_hidden_size: int = Field(64, ge=8)
    vision_layers: int = Field(2, ge=1)
    vision_heads: int = Field(4, ge=1)
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(8, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(344, ge=8)
    max_position_embeddings: int = Field(256, ge=16)
    rope_theta: float = Field(10000.0, gt=0)
    num_frames: int = Field(1, ge=1, le=64, description="Frames per sample: 1 for images; a video model reads this "
                                                        "many frames per video, and an image as that many copies.")
    mod: ModSettings = ModSettings()

    @model_validator(mode="after")
    def _shapes_divide(self) -> ModMllmSettings:
        if self.image_size % self.patch_size:
            raise ValueError("image_size must be a multiple of patch_size")
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be a multiple of num_heads")
        if self.vision_hidden_size % self.vision_heads:
            raise ValueError("vision_hidden_size must be a multiple of vision_heads")
        if self.mod.retention is not None and len(self.mod.retention) != self.num_layers:
            raise ValueError("mod.retention needs one value per decoder layer (num_layers)")
        if self.num_image_tokens + 2 > self.max_position_embeddings:
            raise ValueError(
                f"{self.num_image_tokens} image tokens (num_frames · (image_size / patch_size)²) leave no room for "
                f"text in max_position_embeddings = {self.max_position_embeddings}; raise patch_size or "
                "max_position_embeddings"
            )
        return self

    @property
    def num_image_tokens(self) -> int:
        return self.num_frames * (self.image_size // self.patch_size) ** 2


class HfModelSettings(Frozen):
    """A local Hugging Face checkpoint directory (``hf``): LLaVA or Qwen2-VL, with its tokenizer and image
    processor. It is the pretrained base as it is: experts fine-tune it directly, nothing is downloaded."""

    backend: Literal["hf"]
    path: Path = Field(description="Checkpoint directory (config.json, weights, tokenizer, preprocessor_config.json).")
    image_size: int = Field(
        32, ge=8, le=MAX_IMAGE_SIZE, description="Side of the domains' images before the checkpoint's processor."
    )
    mod: ModSettings = ModSettings()
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="Weights in memory while training and scoring.")

    @model_validator(mode="after")
    def _image_schedules_only(self) -> HfModelSettings:
        if self.mod.schedule == "video_per_frame":
            raise ValueError("schedule 'video_per_frame' routes video frames, which only the mod_mllm backend reads "
                             "so far; use an image schedule with an hf checkpoint")
        return self


def _model_backend(value: object) -> str:
    """The backend a model section names; a section without one is dmo's own model."""
    if isinstance(value, dict):
        return str(value.get("backend", "mod_mllm"))
    return str(getattr(value, "backend", "mod_mllm"))


ModelSettings = Annotated[
    Annotated[ModMllmSettings, Tag("mod_mllm")] | Annotated[HfModelSettings, Tag("hf")],
    Discriminator(_model_backend),
]


class TokenizerSettings(Frozen):
    vocab_size: int = Field(384, ge=64, description="BPE vocabulary size trained on the domains' text.")
