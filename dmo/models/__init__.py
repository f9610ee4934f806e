"""The MoD MLLM, its retention schedules, cost accounting, ARank and checkpoint I/O.

Nothing registers on import: :func:`dmo.models.auto.register_auto` makes
transformers' Auto classes (and so mergekit) know our model type, called by
the code that hands a checkpoint to them.
"""

from __future__ import annotations

from dmo._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "kept_vision_tokens": "dmo.models.schedules",
        "LayerRouting": "dmo.models.modeling_mod_mllm",
        "ModMLLMCausalLMOutput": "dmo.models.modeling_mod_mllm",
        "ModMLLMConfig": "dmo.models.configuration_mod_mllm",
        "ModMLLMForCausalLM": "dmo.models.modeling_mod_mllm",
        "ModMLLMModel": "dmo.models.modeling_mod_mllm",
        "ModMLLMPreTrainedModel": "dmo.models.modeling_mod_mllm",
        "retention_schedule": "dmo.models.schedules",
        "register_auto": "dmo.models.auto",
        "SCHEDULES": "dmo.models.schedules",
    },
)

__all__ = [
    "kept_vision_tokens",
    "LayerRouting",
    "ModMLLMCausalLMOutput",
    "ModMLLMConfig",
    "ModMLLMForCausalLM",
    "ModMLLMModel",
    "ModMLLMPreTrainedModel",
    "register_auto",
    "retention_schedule",
    "SCHEDULES",
]
