"""What mergekit's architecture definitions say about a checkpoint, and the one fix they need.

mergekit merges a known architecture tensor by tensor from its JSON definition and
writes only the tensors it lists. Two consequences for dmo:

* Routed experts (p-MoD routers in an ``hf`` model) carry tensors no definition
  lists: mergekit would drop them without a word. :func:`undefined_tensors` names
  them so the export refuses instead.
* mergekit 0.1.5's ``qwen2_vl`` definition reads the text decoder's layer count
  from the config's top level (``num_hidden_layers``), where transformers 5 no
  longer puts it (it lives in ``text_config``): every Qwen2-VL merge fails.
  Upstream fixed the same key for Qwen2.5-VL (mergekit PR #665).
  :func:`text_config_layers` swaps in the corrected definition for the duration
  of one merge; it does nothing once mergekit reads the right key. It is the one
  place dmo changes a dependency's state (``run_merge`` takes no architecture
  argument), kept to a registry entry, restored on exit and tested so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Definitions whose text decoder reads num_hidden_layers at the top level of a nested config.
_NESTED_TEXT_CONFIG = ("Qwen2VLForConditionalGeneration",)


def _config(directory: Path) -> Any:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(directory), local_files_only=True)


def defined_tensors(directory: Path) -> set[str] | None:
    """Names mergekit's definition gives this checkpoint's architecture, or None where mergekit
    has no definition and infers one from the tensor names (dmo's own model)."""
    from mergekit.architecture import arch_info_for_config

    try:
        config = _config(directory)
    except (OSError, ValueError, KeyError):
        return None  # not a transformers model type (dmo's model before register_auto): inferred
    if len(getattr(config, "architectures", None) or []) != 1:
        return None
    with text_config_layers():
        info = arch_info_for_config(config)
        if info is None:
            return None
        names: set[str] = set()
        for weight in info.all_weights(config):
            names.add(weight.name)
            names.update(weight.aliases or ())
            names.update(weight.tied_names or ())
        return names


def undefined_tensors(directory: Path, tensor_names: Iterable[str]) -> list[str]:
    """Tensors of ``directory`` that mergekit's definition of its architecture lacks (so would drop)."""
    defined = defined_tensors(directory)
    if defined is None:
        return []
    return sorted(name for name in tensor_names if name not in defined)


@contextlib.contextmanager
def text_config_layers() -> Iterator[None]:
    """mergekit's Qwen2-VL definition reading ``text_config.num_hidden_layers``, for this block only."""
    from mergekit.architecture import json_definitions

    registry = json_definitions.NAME_TO_ARCH
    saved = {name: registry[name] for name in _NESTED_TEXT_CONFIG if name in registry}
    try:
        for name, candidates in saved.items():
            registry[name] = [_with_text_config_layers(c) for c in candidates]
        yield
    finally:
        registry.update(saved)


def _with_text_config_layers(architecture: Any) -> Any:
    from mergekit.architecture.json_definitions import JsonModuleArchitecture

    modules, changed = {}, False
    for key, module in architecture.modules.items():
        inner = module.architecture
        definition = getattr(inner, "definition", None)
        if definition is not None and definition.num_layers_config_key == "num_hidden_layers":
            inner = JsonModuleArchitecture(definition=definition.model_copy(
                update={"num_layers_config_key": "text_config.num_hidden_layers"}))
            changed = True
        modules[key] = module.model_copy(update={"architecture": inner})
    return architecture.model_copy(update={"modules": modules}) if changed else architecture
