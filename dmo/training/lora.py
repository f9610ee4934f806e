"""LoRA fine-tuning with peft, folded into dense weights before anything is saved.

Every expert on disk is a plain checkpoint: merging interpolates dense
weights, never LoRA factors (their products do not interpolate linearly).
"""

from __future__ import annotations

from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from dmo.config.schema import LoraSettings


def decoder_target_regex(modules: tuple[str, ...]) -> str:
    """LoRA only on the decoder's projections: the vision tower stays frozen and untouched."""
    return rf"model\.layers\.\d+\.(self_attn|mlp)\.({'|'.join(modules)})"


def add_lora(model: nn.Module, settings: LoraSettings) -> PeftModel:
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=decoder_target_regex(settings.target_modules),
        # Routers and the projector are small and trained in full, as in LLaVA SFT.
        modules_to_save=["router", "projector"],
        bias="none",
    )
    return get_peft_model(model, config)


def fold_lora(model: nn.Module) -> nn.Module:
    """Return the dense model with LoRA deltas added into the base weights."""
    if isinstance(model, PeftModel):
        return model.merge_and_unload()
    return model
