"""Configuration of the MoD MLLM (transformers single-file style).

Like every transformers 5 config this is a dataclass: the fields below are
the arguments, `__post_init__` validates them. Names follow Hugging Face
conventions (`hidden_size`, `num_hidden_layers`, ...) so that transformers and
mergekit tooling read the checkpoint's `config.json` without help.
"""

from __future__ import annotations

from typing import Any, ClassVar

from transformers import PretrainedConfig

from dmo.config.schema import ModelSettings
from dmo.errors import ConfigError
from dmo.models.schedules import PER_FRAME_SCHEDULES, SCHEDULES, retention_schedule


class ModMLLMConfig(PretrainedConfig):
    r"""A tiny LLaVA-shaped multimodal LLM whose decoder is a Mixture-of-Depths.

    Args:
        vocab_size (`int`, defaults to 384):
            Text vocabulary size (rows of `embed_tokens` and `lm_head`).
        image_size (`int`, defaults to 32):
            Side of the square input image in pixels.
        patch_size (`int`, defaults to 4):
            Side of a ViT patch; `(image_size / patch_size)²` vision tokens per image.
        vision_hidden_size (`int`, defaults to 64):
            Width of the vision tower.
        vision_layers (`int`, defaults to 2):
            Transformer blocks of the vision tower.
        vision_heads (`int`, defaults to 4):
            Attention heads of the vision tower.
        hidden_size (`int`, defaults to 128):
            Width `d` of the language decoder.
        num_hidden_layers (`int`, defaults to 8):
            Decoder layers `L`.
        num_attention_heads (`int`, defaults to 4):
            Attention heads of each decoder layer.
        intermediate_size (`int`, defaults to 344):
            Width `d_ff` of the SwiGLU MLP.
        max_position_embeddings (`int`, defaults to 256):
            Longest sequence the model accepts (RoPE itself has no table).
        rope_theta (`float`, defaults to 1e4):
            RoPE base frequency.
        rms_norm_eps (`float`, defaults to 1e-5):
            Epsilon of the decoder's RMSNorms.
        image_token_id (`int`, defaults to 3):
            Id of the `<image>` placeholder; its positions receive the projected
            patch features and are the vision tokens MoD routes. Real configs
            take it from the tokenizer (see :meth:`from_settings`).
        pad_token_id, bos_token_id, eos_token_id (`int`, default 0, 1, 2):
            Special-token ids of the tokenizer.
        mod_schedule (`str`, defaults to `"prd_shifted_cosine"`):
            Name of the retention schedule (a key of `dmo.models.schedules.SCHEDULES`).
        mod_retention (`list[float]`, *optional*):
            Per-layer retention; given exactly when `mod_schedule == "explicit"`.
        mod_constant (`float`, defaults to 0.5):
            Retention of every layer under schedule `"constant"`.
        mod_dense_above (`float`, defaults to 0.85):
            PRD layers whose cosine retention exceeds this stay dense.
        mod_floor (`float`, defaults to 0.15):
            Lowest retention of a routed layer (PRD and `"linear"`).
        tanh_alpha (`float`, defaults to 0.2):
            TanhNorm scale α in the router weight `g = α·tanh(r) + β`.
        tanh_beta (`float`, defaults to 1.0):
            TanhNorm offset β; with a zero router `g = β = 1` and MoD equals dense.
        tie_word_embeddings (`bool`, defaults to False):
            Share `lm_head.weight` with `model.embed_tokens.weight`.
    """

    model_type: ClassVar[str] = "mod_mllm"

    vocab_size: int = 384
    image_size: int = 32
    patch_size: int = 4
    vision_hidden_size: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    hidden_size: int = 128
    num_hidden_layers: int = 8
    num_attention_heads: int = 4
    intermediate_size: int = 344
    max_position_embeddings: int = 256
    rope_theta: float = 1e4
    rms_norm_eps: float = 1e-5
    image_token_id: int = 3
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    mod_schedule: str = "prd_shifted_cosine"
    mod_retention: list[float] | None = None
    mod_constant: float = 0.5
    mod_dense_above: float = 0.85
    mod_floor: float = 0.15
    mod_frame_retention: float = 0.2
    num_frames: int = 1
    tanh_alpha: float = 0.2
    tanh_beta: float = 1.0
    tie_word_embeddings: bool = False
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs: Any) -> None:
        if self.mod_retention is not None:
            self.mod_retention = [float(r) for r in self.mod_retention]
        self._check_fields()
        super().__post_init__(**kwargs)

    def _check_fields(self) -> None:
        positive = (
            "vocab_size", "image_size", "patch_size", "vision_hidden_size", "vision_layers",
            "vision_heads", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "max_position_embeddings", "num_frames",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"must be a positive integer, got {value!r}", where=f"config.{name}")
        divides = (
            ("image_size", "patch_size"),
            ("hidden_size", "num_attention_heads"),
            ("vision_hidden_size", "vision_heads"),
        )
        for whole, part in divides:
            if getattr(self, whole) % getattr(self, part):
                raise ConfigError(
                    f"{getattr(self, whole)} is not a multiple of {part}={getattr(self, part)}",
                    where=f"config.{whole}",
                )
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ConfigError("head dimension must be even for RoPE", where="config.num_attention_heads")
        if self.num_image_tokens + 2 > self.max_position_embeddings:
            raise ConfigError(
                f"{self.num_image_tokens} vision tokens do not fit in the sequence",
                where="config.max_position_embeddings",
            )
        for name in ("image_token_id", "pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ConfigError(
                    f"{value} is outside the vocabulary [0, {self.vocab_size})", where=f"config.{name}"
                )
        if self.mod_schedule not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {self.mod_schedule!r}",
                where="config.mod_schedule",
                hint=f"known: {', '.join(SCHEDULES)}",
            )
        if (self.mod_schedule == "explicit") != (self.mod_retention is not None):
            raise ConfigError(
                "is given exactly when mod_schedule is 'explicit'", where="config.mod_retention"
            )
        if self.tanh_alpha <= 0:
            raise ConfigError(f"must be > 0, got {self.tanh_alpha}", where="config.tanh_alpha")
        self.layer_retention()  # raises ConfigError on a bad schedule

    # ------------------------------------------------------------------ derived

    @property
    def patches_per_frame(self) -> int:
        """Vision tokens of one image or one video frame: one per patch."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_image_tokens(self) -> int:
        """Vision tokens per sample: every frame's patches, frame after frame (an image is one frame,
        or ``num_frames`` copies of itself in a video model)."""
        return self.num_frames * self.patches_per_frame

    @property
    def routing_frames(self) -> int | None:
        """The frames routed layers choose within (VideoLLM-MoD's schedule), None: the whole sample."""
        return self.num_frames if self.mod_schedule in PER_FRAME_SCHEDULES else None

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def layer_retention(self) -> tuple[float, ...]:
        """ρ_l of every decoder layer; layers with ρ_l < 1 get a router."""
        return retention_schedule(
            self.mod_schedule,
            self.num_hidden_layers,
            constant=self.mod_constant,
            dense_above=self.mod_dense_above,
            floor=self.mod_floor,
            retention=self.mod_retention,
            frame_retention=self.mod_frame_retention,
        )

    def image_layer_retention(self) -> tuple[float, ...]:
        """ρ_l for image samples. Under VideoLLM-MoD's schedule a video model routes its videos within
        each frame (:meth:`layer_retention`) and its images by p-MoD's PRD, as a p-MoD image model
        would; under every other schedule images and videos share one retention."""
        if self.routing_frames is None:
            return self.layer_retention()
        return retention_schedule("prd_shifted_cosine", self.num_hidden_layers, dense_above=self.mod_dense_above,
                                  floor=self.mod_floor)

    def mod_settings(self) -> dict[str, Any]:
        """The efficiency settings stored in the DB and compared before a merge.

        Two models merge only if these are equal, so everything that changes
        which tokens a layer processes (schedule, per-layer retention) or how
        the router weight is formed (α, β) is in here.
        """
        settings = {
            "schedule": self.mod_schedule,
            "retention": list(self.layer_retention()),
            "tanh_alpha": float(self.tanh_alpha),
            "tanh_beta": float(self.tanh_beta),
        }
        if self.num_frames > 1 or self.routing_frames is not None:  # video models only: image rows stay as they were
            settings["frames"] = int(self.num_frames)
            settings["per_frame"] = self.routing_frames is not None
            if self.routing_frames is not None:
                settings["image_retention"] = list(self.image_layer_retention())
        return settings

    @classmethod
    def from_settings(
        cls,
        settings: ModelSettings,
        *,
        vocab_size: int,
        image_token_id: int,
        pad_token_id: int,
        bos_token_id: int,
        eos_token_id: int,
    ) -> ModMLLMConfig:
        """Build the model config from the validated project config and the tokenizer's ids."""
        mod = settings.mod
        return cls(
            vocab_size=vocab_size,
            image_size=settings.image_size,
            patch_size=settings.patch_size,
            vision_hidden_size=settings.vision_hidden_size,
            vision_layers=settings.vision_layers,
            vision_heads=settings.vision_heads,
            hidden_size=settings.hidden_size,
            num_hidden_layers=settings.num_layers,
            num_attention_heads=settings.num_heads,
            intermediate_size=settings.intermediate_size,
            max_position_embeddings=settings.max_position_embeddings,
            rope_theta=settings.rope_theta,
            image_token_id=image_token_id,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            mod_schedule=mod.schedule,
            mod_retention=list(mod.retention) if mod.retention is not None else None,
            mod_constant=mod.constant,
            mod_dense_above=mod.dense_above,
            mod_floor=mod.floor,
            mod_frame_retention=mod.frame_retention,
            num_frames=settings.num_frames,
            tanh_alpha=mod.tanh_alpha,
            tanh_beta=mod.tanh_beta,
        )


__all__ = ["ModMLLMConfig"]
