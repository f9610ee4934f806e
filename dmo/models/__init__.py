"""The MoD MLLM, its retention schedules, cost accounting, ARank and checkpoint I/O.

Nothing registers on import: call :func:`register_auto` before handing a
checkpoint to transformers' Auto classes or to mergekit.
"""

from __future__ import annotations

from dmo.models.configuration_mod_mllm import ModMLLMConfig
from dmo.models.modeling_mod_mllm import (
    LayerRouting,
    ModMLLMCausalLMOutput,
    ModMLLMForCausalLM,
    ModMLLMModel,
    ModMLLMPreTrainedModel,
)
from dmo.models.schedules import SCHEDULES, kept_vision_tokens, retention_schedule


def register_auto() -> None:
    """Make `AutoConfig` / `AutoModel` / `AutoModelForCausalLM` know "mod_mllm" (idempotent)."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    AutoConfig.register(ModMLLMConfig.model_type, ModMLLMConfig, exist_ok=True)
    AutoModel.register(ModMLLMConfig, ModMLLMModel, exist_ok=True)
    AutoModelForCausalLM.register(ModMLLMConfig, ModMLLMForCausalLM, exist_ok=True)


__all__ = [
    "SCHEDULES",
    "LayerRouting",
    "ModMLLMCausalLMOutput",
    "ModMLLMConfig",
    "ModMLLMForCausalLM",
    "ModMLLMModel",
    "ModMLLMPreTrainedModel",
    "kept_vision_tokens",
    "register_auto",
    "retention_schedule",
]
