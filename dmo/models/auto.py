"""Our model type in transformers' Auto classes, for code that loads checkpoints through them.

dmo itself builds its models directly; mergekit and users' transformers code
go through ``AutoConfig`` / ``AutoModelForCausalLM``, which must know
``mod_mllm`` first. Registration is global state in transformers, so it is done
once per process, by the code that hands a checkpoint over.
"""

from __future__ import annotations

_registered = False


def register_auto() -> None:
    """Make `AutoConfig` / `AutoModel` / `AutoModelForCausalLM` know "mod_mllm" (once)."""
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    from dmo.models.configuration_mod_mllm import ModMLLMConfig
    from dmo.models.modeling_mod_mllm import ModMLLMForCausalLM, ModMLLMModel

    AutoConfig.register(ModMLLMConfig.model_type, ModMLLMConfig, exist_ok=True)
    AutoModel.register(ModMLLMConfig, ModMLLMModel, exist_ok=True)
    AutoModelForCausalLM.register(ModMLLMConfig, ModMLLMForCausalLM, exist_ok=True)
    _registered = True
