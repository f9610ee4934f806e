"""Model backends: the one seam between dmo's pipeline and a model family (see base.py).

An explicit registry: ``mod_mllm`` (dmo's own tiny MoD MLLM, the default) and
``hf`` (a local Hugging Face LLaVA or Qwen2-VL checkpoint). ``model.backend``
in the config picks one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from dmo.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from dmo.config.schema import DmoConfig
    from dmo.models.backends.base import ModelBackend

BACKEND_NAMES = ("mod_mllm", "hf")


def get_backend(name: str) -> ModelBackend:
    """The registered backend ``name``; an unknown name lists the known ones."""
    if name == "mod_mllm":
        from dmo.models.backends.mod_mllm import ModMllmBackend

        return ModMllmBackend()
    if name == "hf":
        from dmo.models.backends.hf import HfBackend

        return HfBackend()
    raise ConfigError(f"unknown model backend {name!r}", where="model.backend", hint=f"known: {', '.join(BACKEND_NAMES)}")


def backend_for(config: DmoConfig) -> ModelBackend:
    return get_backend(config.model.backend)


def backend_of_checkpoint(path: str | Path) -> ModelBackend:
    """The backend that reads a checkpoint: dmo's own model type, else a Hugging Face architecture."""
    config_path = Path(path) / "config.json"
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise CheckpointError(f"no readable config.json: {error}", where=str(path),
                              hint="pass a checkpoint directory") from None
    return get_backend("mod_mllm" if model_type == "mod_mllm" else "hf")


__all__ = ["BACKEND_NAMES", "backend_for", "backend_of_checkpoint", "get_backend"]
