"""LoRA experts as peft saves them, read as factors: ``ΔW = s·B·A`` per adapted matrix.

A peft adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``, what
``PeftModel.save_pretrained`` and LLaMA-Factory write) holds, under ``base_model.model.``,
``<module>.lora_A.weight`` (r × d_in) and ``<module>.lora_B.weight`` (d_out × r) for each adapted
linear layer, and the plain tensors of the modules trained in full (``modules_to_save``: dmo's
routers, LLaVA's projector). Only what is linear in ``w`` is read: plain LoRA with one rank and
alpha for every module. DoRA (a per-column norm) and per-module rank or alpha patterns are refused
by name rather than merged wrongly. Pickle adapters (``adapter_model.bin``) are never loaded: they
can run code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from dmo.errors import CheckpointError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
_A, _B = ".lora_A.weight", ".lora_B.weight"


@dataclass(frozen=True)
class LoraFactors:
    """One adapted matrix of one expert: its delta is ``scale · b @ a``."""

    a: torch.Tensor  # (r, d_in)
    b: torch.Tensor  # (d_out, r)
    scale: float

    @property
    def rank(self) -> int:
        return self.a.shape[0]

    def dense(self) -> torch.Tensor:
        """The folded delta (d_out × d_in), float32: what peft's merge_and_unload adds."""
        return self.scale * (self.b.to(torch.float32) @ self.a.to(torch.float32))


@dataclass(frozen=True)
class LoraExpert:
    """An expert kept as factors: ``factors`` by the dense parameter name they adapt (``…q_proj.weight``),
    and the values of the tensors it trained in full (``full``, by parameter name)."""

    name: str
    factors: Mapping[str, LoraFactors]
    full: Mapping[str, torch.Tensor]
    base_model: str | None = None  # adapter_config.json's base_model_name_or_path, as peft wrote it


EMBEDDED_ADAPTER = "adapter"  # where a LoRA model dmo trained keeps its adapter, beside the folded weights


def is_adapter(directory: str | Path) -> bool:
    """Whether ``directory`` is a peft adapter itself (not a checkpoint that embeds one)."""
    return (Path(directory) / ADAPTER_CONFIG).is_file()


def embedded_adapter(directory: str | Path) -> Path | None:
    """The adapter a LoRA checkpoint dmo trained keeps in ``adapter/``, if it has one."""
    folder = Path(directory) / EMBEDDED_ADAPTER
    return folder if is_adapter(folder) else None


def read_adapter(directory: str | Path, *, name: str | None = None) -> LoraExpert:
    """The factors and fully trained tensors of a peft LoRA adapter directory (CheckpointError if not one)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    config = _adapter_config(directory)
    weights = directory / ADAPTER_WEIGHTS
    if not weights.is_file():
        pickled = (directory / "adapter_model.bin").is_file()
        raise CheckpointError(
            "holds a pickle adapter (adapter_model.bin), which dmo never loads: it can run code" if pickled
            else f"has no {ADAPTER_WEIGHTS}", where=str(directory),
            hint="save the adapter with safe_serialization=True (peft's and LLaMA-Factory's default)")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"unreadable adapter weights: {error}", where=str(weights)) from None
    scale = _scale(config, directory)
    factors: dict[str, LoraFactors] = {}
    full: dict[str, torch.Tensor] = {}
    for key in sorted(tensors):
        name_ = key.removeprefix(PEFT_PREFIX)
        if name_.endswith(_A):
            module = name_[: -len(_A)]
            b = tensors.get(PEFT_PREFIX + module + _B, tensors.get(module + _B))
            if b is None:
                raise CheckpointError(f"{module} has lora_A but no lora_B", where=str(weights),
                                      hint="the adapter file is incomplete; save it again")
            a = tensors[key]
            if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
                raise CheckpointError(f"{module}: lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)} do not "
                                      "make one rank-r product", where=str(weights))
            factors[f"{module}.weight"] = LoraFactors(a=a, b=b, scale=scale(a.shape[0]))
        elif name_.endswith(_B):
            module = name_[: -len(_B)]
            if PEFT_PREFIX + module + _A not in tensors and module + _A not in tensors:
                raise CheckpointError(f"{module} has lora_B but no lora_A", where=str(weights),
                                      hint="the adapter file is incomplete; save it again")
        elif ".lora_" in name_:
            raise CheckpointError(f"tensor {key} is not plain LoRA (lora_A/lora_B)", where=str(weights),
                                  hint="dmo merges plain LoRA adapters; fold others into a full checkpoint first")
        else:
            full[name_] = tensors[key]
    if not factors:
        raise CheckpointError("the adapter holds no LoRA factors", where=str(weights))
    declared = config.get("base_model_name_or_path")
    return LoraExpert(name=name or directory.name, factors=factors, full=full,
                      base_model=declared if isinstance(declared, str) and declared else None)


def _adapter_config(directory: Path) -> dict:
    path = directory / ADAPTER_CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"is not a peft adapter (no {ADAPTER_CONFIG})", where=str(directory)) from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"unreadable: {error}", where=str(path)) from None
    if not isinstance(config, dict):
        raise CheckpointError("is not a JSON object", where=str(path))
    refusals = {
        "peft_type": (config.get("peft_type", "LORA") != "LORA", "only LoRA adapters merge as factors"),
        "use_dora": (bool(config.get("use_dora")), "DoRA rescales each column by a learned norm: not linear in w"),
        "rank_pattern": (bool(config.get("rank_pattern")), "per-module ranks are not supported yet"),
        "alpha_pattern": (bool(config.get("alpha_pattern")), "per-module alphas are not supported yet"),
        "lora_bias": (bool(config.get("lora_bias")), "LoRA bias terms are not supported yet"),
    }
    for field, (refused, why) in refusals.items():
        if refused:
            raise CheckpointError(f"{field} = {config.get(field)!r}: {why}", where=f"{path}: {field}",
                                  hint="fold the adapter into a full checkpoint (merge_and_unload) and import that")
    if not isinstance(config.get("r"), int) or config["r"] < 1 or not isinstance(config.get("lora_alpha"), (int, float)):
        raise CheckpointError("needs an integer r ≥ 1 and a number lora_alpha", where=str(path))
    return config


def _scale(config: dict, directory: Path):
    """peft's scaling: alpha / r, or alpha / √r with rsLoRA; r is the file's own (it must match the config's)."""
    alpha, r_config, rs = float(config["lora_alpha"]), int(config["r"]), bool(config.get("use_rslora"))

    def scale(r: int) -> float:
        if r != r_config:
            raise CheckpointError(f"factors of rank {r}, but adapter_config.json says r = {r_config}",
                                  where=str(directory / ADAPTER_CONFIG))
        return alpha / math.sqrt(r) if rs else alpha / r

    return scale
