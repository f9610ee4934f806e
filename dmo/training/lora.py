"""LoRA fine-tuning with peft: saved folded into dense weights, with the adapter beside them.

Every LoRA model on disk is a plain checkpoint (the folded weights: what ``dmo eval``, validation
and mergekit read) that also holds its peft adapter in ``adapter/``, from which a proxy evaluator
merges experts as factors (:mod:`dmo.merging.factored`) at K adapters of memory. The factors are
never interpolated themselves (their products do not interpolate linearly).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
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


def adapter_files(model: nn.Module, folder: str = "adapter") -> dict[str, bytes]:
    """The peft adapter of ``model`` (before folding) as checkpoint extra files ``folder/…``: config and
    safetensors weights, routers and other fully trained modules included; {} for a model without LoRA."""
    peft = sys.modules.get("peft")
    if peft is None or not isinstance(model, peft.PeftModel):
        return {}
    with tempfile.TemporaryDirectory(prefix="dmo-adapter-") as staging:
        model.save_pretrained(staging, safe_serialization=True)
        return {f"{folder}/{path.name}": path.read_bytes() for path in sorted(Path(staging).iterdir()) if path.is_file()
                and path.name in ("adapter_config.json", "adapter_model.safetensors")}
