"""The training section: one settings type per stage of the one training loop, and the shipped base's pin."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from dmo.config.fields import Frozen


class LoraSettings(Frozen):
    r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class TrainingSettings(Frozen):
    """One stage of the one training loop (base, expert or mixture)."""

    steps: int = Field(ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Cosine decays to lr·min_lr_ratio.")
    warmup_steps: int = Field(20, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    finetune: Literal["full", "lora"] = "full"
    lora: LoraSettings = LoraSettings()
    freeze_vision: bool = Field(True, description="Keep the vision tower frozen (base training ignores it).")
    checkpoint_every: int = Field(0, ge=0, description="Steps between resumable checkpoints; 0 = at the end only.")

    @property
    def sample_budget(self) -> int:
        """Samples seen by one run: the budget N shared by experts and mixture models."""
        return self.steps * self.batch_size


SHA256_HEX = r"^[0-9a-f]{64}$"


class PretrainedBase(Frozen):
    """A base trained once and kept with the project (the demo ships one in ``configs/bases/demo``).

    Made by ``dmo train base -c CONFIG --from-scratch --out DIR``; a project that names it adopts it
    instead of training its base again, once its weights and its training key are checked
    (:mod:`dmo.training.shipped_base`)."""

    path: Path = Field(description="The checkpoint directory, relative to the config file.")
    weights_sha256: str = Field(pattern=SHA256_HEX, description="sha256 of its model.safetensors: the pin that "
                                                                 "`dmo train base --from-scratch --out` prints.")


class TrainingStages(Frozen):
    base: TrainingSettings = TrainingSettings(steps=300, lr=1e-3, freeze_vision=False)
    pretrained_base: PretrainedBase | None = Field(
        None, description="Adopt this checkpoint as the base instead of training it (dmo's own model only)."
    )
    base_mixture: dict[str, float] | None = Field(
        None, description="Domain weights of the base's pretraining data (normalised; a domain may be 0, so "
        "its skill is left for its expert to learn); default uniform over the domains."
    )
    expert: TrainingSettings = TrainingSettings(steps=500, lr=1e-3)
    mixture: TrainingSettings | None = Field(
        None, description="Mixture-model SFT; defaults to the expert stage (same budget and schedule)."
    )
    threads: int = Field(1, ge=1, description="torch threads per training task.")
    heartbeat_s: int = Field(
        30, ge=1, description="A trainer beats its claim this often; silent for 3 beats, it is presumed dead "
        "and another caller takes the training over."
    )

    def mixture_stage(self) -> TrainingSettings:
        return self.mixture or self.expert
