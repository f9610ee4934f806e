"""LoRA fine-tuning with peft, folded into dense weights before anything is saved.

Every expert on disk is a plain checkpoint: merging interpolates dense
weights, never LoRA factors (their products do not interpolate linearly).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from torch import nn

from dmo.config.schema import LoraSettings

if TYPE_CHECKING:
    from peft import PeftModel

# peft costs about 5 s to import (it pulls transformers' distributed stack): only runs that use LoRA pay it.


def add_lora(model: nn.Module, settings: LoraSettings, *, targets: str, modules_to_save: list[str]) -> PeftModel:
    """LoRA on the linear layers ``targets`` matches (the backend's: the decoder's projections, so the
    vision tower stays frozen and untouched); ``modules_to_save`` are trained in full beside it."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        modules_to_save=modules_to_save,
        bias="none",
    )
    return get_peft_model(model, config)


def fold_lora(model: nn.Module) -> nn.Module:
    """Return the dense model with LoRA deltas added into the base weights."""
    peft = sys.modules.get("peft")  # a model can only be a PeftModel once add_lora imported peft
    if peft is not None and isinstance(model, peft.PeftModel):
        return model.merge_and_unload()
    return model
