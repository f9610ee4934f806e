"""What a model backend answers for: the one seam between dmo's pipeline and a model family.

The training loop, evaluation, the proxy evaluator, the compatibility guard
and data preparation talk to models only through a :class:`ModelBackend`:

- building and loading: the model training starts from, a checkpoint back as a model, the tensors
  of a checkpoint for the task-vector bank (with the zero routers a base that never had them gets);
- saving: a checkpoint with everything needed to encode like it (tokenizer, processor);
- encoding: samples into prompt and answer ids with the checkpoint's own tokenizer, processor and
  chat template, labels only on the answer;
- generating: greedy answers;
- parameters: which are frozen in SFT, which are kept at base values in a merge, which LoRA adapts;
- merging: the settings experts must share;
- efficiency: the MoD schedule, FLOPs and KV-cache accounting.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dmo.config.schema import DmoConfig, LoraSettings
from dmo.data.prepared import SampleEncoder
from dmo.data.sample import DomainData


class ModelBackend(ABC):
    name: str
    #: whether a project trains its own base first (dmo's model) or starts from a pretrained one
    trains_base: bool = True

    # ------------------------------------------------------------------ data

    @abstractmethod
    def encoder(self, config: DmoConfig, domains: Mapping[str, DomainData]) -> SampleEncoder:
        """The encoder of a project's model."""

    @abstractmethod
    def checkpoint_encoder(self, config: DmoConfig, checkpoint: Path) -> SampleEncoder:
        """The encoder a checkpoint was trained with (its own tokenizer and processor)."""

    # ------------------------------------------------------------------ models

    @abstractmethod
    def model_config(self, config: DmoConfig, encoder: SampleEncoder) -> Any:
        """The model config a project trains (cheap: no weights are read)."""

    @abstractmethod
    def accounting_config(self, config: DmoConfig) -> Any:
        """The model config for cost accounting only (``dmo model info``): no data, no tokenizer needed."""

    @abstractmethod
    def initial_model(self, config: DmoConfig, encoder: SampleEncoder, init: Path | None, *, seed: int) -> nn.Module:
        """The model a training run starts from: ``init``'s checkpoint, else the project's base."""

    @abstractmethod
    def load(self, path: Path, *, verify: bool = True) -> nn.Module:
        """A checkpoint as a model in eval mode (hashes verified for dmo's checkpoints)."""

    @abstractmethod
    def state_dict(self, path: Path, *, verify: bool = True, like: Path | None = None) -> dict[str, torch.Tensor]:
        """Every tensor the task-vector bank merges, as this backend's models name them; a base read
        to be merged with experts (``like``, one of them) names what they name."""

    def proxy_model(self, config: DmoConfig, base: Path) -> nn.Module:
        """The model a proxy evaluator writes proxies into: the base, shaped like the experts."""
        return self.load(base)

    @abstractmethod
    def save(self, model: nn.Module, out_dir: Path, *, encoder: SampleEncoder,
             extra_files: Mapping[str, str | bytes]) -> str:
        """Write ``model`` atomically as a checkpoint; return the sha256 of all its files (what a cache
        hit is checked against; the base fingerprint is :meth:`fingerprint`)."""

    @abstractmethod
    def fingerprint(self, path: Path) -> str:
        """The base identity experts record and the guard compares: a content hash (dmo's own model leaves
        its training record out, so a base re-made with the same weights keeps its experts)."""

    def intact(self, path: Path, sha256: str | None) -> bool:
        """Whether a checkpoint dmo wrote is still there as it was (a cache hit may be reused)."""
        from dmo.models.checkpoint import checkpoint_sha256

        return path.is_dir() and (path / "dmo_manifest.json").is_file() and checkpoint_sha256(path) == sha256

    # ------------------------------------------------------------------ parameters

    @abstractmethod
    def freeze_vision(self, model: nn.Module) -> None:
        """Keep the vision tower at its pretrained values (SFT practice)."""

    @abstractmethod
    def lora_targets(self, settings: LoraSettings) -> tuple[str, list[str]]:
        """(regex of the linear layers LoRA adapts, modules trained in full beside it)."""

    @abstractmethod
    def merge_exclude(self, path: Path) -> tuple[str, ...]:
        """Parameters that keep base values in every merge (the frozen vision tower)."""

    # ------------------------------------------------------------------ merging

    @abstractmethod
    def check_compatible(self, base: Path, experts: Sequence[Path]) -> None:
        """Refuse experts that do not share the base, its config and its MoD settings (MergeError)."""

    def check_routing(self, model: nn.Module, expert: Path) -> None:
        """Refuse an expert routed otherwise than ``model``, the project's proxy model (MergeError).
        dmo's own checkpoints carry their MoD settings in the config ``check_compatible`` compares."""

    # ------------------------------------------------------------------ inference

    @abstractmethod
    def generate(self, model: nn.Module, batch: Mapping[str, torch.Tensor], *, max_new_tokens: int,
                 eos_id: int, pad_id: int) -> torch.Tensor:
        """Greedy answers (B, ≤ max_new_tokens) for a left-padded prompt batch; finished rows padded."""

    def generate_scored(self, model: nn.Module, batch: Mapping[str, torch.Tensor], answers: torch.Tensor,
                        answer_mask: torch.Tensor, *, max_new_tokens: int, eos_id: int,
                        pad_id: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Greedy answers and each row's likelihood of its reference ``answers`` (B, m), right-padded,
        from one prefill of the prompts; None where the backend cannot (the caller then scores the
        answers with a forward pass of its own)."""
        return None

    @abstractmethod
    def mean_gates(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Mean TanhNorm gate of each routed layer on ``batch`` (how a proxy routes)."""

    # ------------------------------------------------------------------ efficiency

    @abstractmethod
    def efficiency(self, model_config: Any) -> dict[str, Any]:
        """MoD settings (the ones experts must share), per-layer retention, FLOPs and KV ratios vs dense."""
