"""``hf``: a local Hugging Face checkpoint (LLaVA, Qwen2-VL) fine-tuned as it is, with p-MoD routing.

The checkpoint is the pretrained base: there is no base-training step, and
nothing is downloaded (``local_files_only``). Samples are encoded with the
checkpoint's own tokenizer, image processor and chat template — the image
placeholder expanded to as many image tokens as the vision tower makes, the
labels only on the answer and its end-of-turn token. Qwen2-VL's processor
wants a video processor, which needs torchvision (whose PyPI build does not
load beside the pinned CPU torch here), so images go through its image
processor and the tokens are expanded here, as the processor would; a
Qwen2-VL video's patches are rebuilt from its frames' image patches
(:mod:`dmo.models.qwen2_vl_video`). LLaVA reads images only. The encoding lives in
:mod:`dmo.models.backends.hf_encoder`, the supported families in :mod:`dmo.models.backends.hf_architectures`.

Experts are written as dmo checkpoints (a sha256 manifest), with the MoD
settings in ``config.json`` (``dmo_mod``) and the routers as
``…language_model.layers.{i}.router.{weight,bias}``; everything else keeps the
names transformers, peft and mergekit know.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dmo.config.schema import DmoConfig, LoraSettings, ModSettings
from dmo.data.sample import DomainData, Sample
from dmo.errors import CheckpointError, ConfigError, MergeError
from dmo.files import file_sha256, total_sha256
from dmo.models.backends.base import ModelBackend
from dmo.models.backends.hf_architectures import Architecture, architecture, read_hf_config
from dmo.models.backends.hf_encoder import HfEncoder
from dmo.models.schedules import retention_schedule

__all__ = ["HfBackend", "HfEncoder", "HfModConfig", "attention_probe", "mod_settings_for", "vision_token_ids"]

MANIFEST = "dmo_manifest.json"
MOD_KEY = "dmo_mod"  # the MoD settings of a routed checkpoint, in its config.json
TYPICAL_TEXT_TOKENS = 16


# --------------------------------------------------------------------------- reading a checkpoint


def _is_dmo_checkpoint(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def _refuse_pickles(path: Path) -> None:
    from dmo.models.checkpoint import refuse_pickles

    refuse_pickles(path)


@dataclass(frozen=True)
class HfModConfig:
    """A routed Hugging Face model's shape and MoD settings, for merging guards and cost accounting."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    retention: tuple[float, ...]
    tanh_alpha: float
    tanh_beta: float
    schedule: str
    num_image_tokens: int
    routing_frames: None = None  # the hf backend routes images only (no per-frame schedule)

    def layer_retention(self) -> tuple[float, ...]:
        return self.retention

    def mod_settings(self) -> dict[str, Any]:
        return {"schedule": self.schedule, "retention": list(self.retention), "tanh_alpha": self.tanh_alpha,
                "tanh_beta": self.tanh_beta}


def mod_settings_for(settings: ModSettings, num_layers: int) -> dict[str, Any]:
    """The ``dmo_mod`` entry of a project's MoD settings for a decoder of ``num_layers`` layers."""
    if settings.retention is not None and len(settings.retention) != num_layers:
        raise ConfigError(f"has {len(settings.retention)} values for the checkpoint's {num_layers} decoder layers",
                          where="model.mod.retention", hint="give one value per decoder layer")
    retention = retention_schedule(settings.schedule, num_layers, constant=settings.constant,
                                   dense_above=settings.dense_above, floor=settings.floor, retention=settings.retention)
    return {"schedule": settings.schedule, "retention": list(retention), "tanh_alpha": settings.tanh_alpha,
            "tanh_beta": settings.tanh_beta}


def vision_token_ids(config: Any) -> list[int]:
    """The placeholder ids vision features replace: image, and video where the model reads video."""
    video = getattr(config, "video_token_id", None)
    return [int(config.image_token_id)] + ([int(video)] if video is not None else [])


def _route(model: nn.Module, mod: Mapping[str, Any]) -> None:
    from dmo.models.hf_routing import attach_routers

    attach_routers(model, mod["retention"], vision_token_ids=vision_token_ids(model.config),
                   tanh_alpha=mod["tanh_alpha"], tanh_beta=mod["tanh_beta"])
    setattr(model.config, MOD_KEY, dict(mod))


def attention_probe(path: Path, samples: Sequence[Sample]) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A checkpoint with eager attention (the only kind that returns attention maps, for ARank) and
    ``samples`` encoded with its own tokenizer, processor and chat template, right-padded."""
    from dmo.data.encoding import training_batch

    model = HfBackend().load(Path(path))
    model.set_attn_implementation("eager")
    encoder = HfEncoder(Path(path), image_size=0)
    split = encoder.encode(samples)
    batch = training_batch(split, range(len(samples)), encoder.pad_id)
    batch.pop("labels")
    return model, batch


# --------------------------------------------------------------------------- the backend


class HfBackend(ModelBackend):
    name = "hf"
    trains_base = False

    # ------------------------------------------------------------------ data

    def encoder(self, config: DmoConfig, domains: Mapping[str, DomainData]) -> HfEncoder:
        return HfEncoder(Path(config.model.path), config.model.image_size)

    def checkpoint_encoder(self, config: DmoConfig, checkpoint: Path) -> HfEncoder:
        return HfEncoder(checkpoint, config.model.image_size)

    # ------------------------------------------------------------------ models

    def model_config(self, config: DmoConfig, encoder: HfEncoder | None) -> HfModConfig:
        path = Path(config.model.path)
        hf = read_hf_config(path)
        architecture(hf, path)
        text = hf.get_text_config()
        mod = mod_settings_for(config.model.mod, text.num_hidden_layers)
        tokens = 0
        if encoder is not None:
            probe = Sample("probe", "probe", np.zeros((config.model.image_size,) * 2 + (3,), np.uint8), "", "")
            tokens = encoder.arch.image_tokens(encoder.config, encoder._images(probe), encoder.processor)
        return HfModConfig(text.hidden_size, text.intermediate_size, text.num_hidden_layers, tuple(mod["retention"]),
                           mod["tanh_alpha"], mod["tanh_beta"], mod["schedule"], tokens)

    def accounting_config(self, config: DmoConfig) -> HfModConfig:
        """Shapes from config.json; vision tokens per image from the checkpoint's own processor."""
        return self.model_config(config, self.encoder(config, {}))

    def initial_model(self, config: DmoConfig, encoder: Any, init: Path | None, *, seed: int) -> nn.Module:
        path = Path(init or config.model.path)
        model = self.load(path)
        if getattr(model, "_dmo_routing", None) is None:
            _route(model, mod_settings_for(config.model.mod, model.config.get_text_config().num_hidden_layers))
        if config.model.dtype == "bfloat16":
            model = model.to(torch.bfloat16)
        return model

    def load(self, path: Path, *, verify: bool = True) -> nn.Module:
        """A dmo checkpoint (verified, routers restored) or a user's pretrained checkpoint."""
        from transformers import AutoModelForImageTextToText

        path = Path(path)
        config = read_hf_config(path)
        architecture(config, path)
        _refuse_pickles(path)
        if not _is_dmo_checkpoint(path):
            try:
                model = AutoModelForImageTextToText.from_pretrained(str(path), config=config, local_files_only=True,
                                                                    dtype=torch.float32)
            except (OSError, ValueError) as error:
                raise CheckpointError(f"cannot load its weights: {str(error).splitlines()[0]}", where=str(path)) from None
            return model.eval()
        state = self.state_dict(path, verify=verify)
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
        mod = getattr(config, MOD_KEY, None)
        if mod:
            _route(model, mod)
        missing, unexpected = model.load_state_dict(state, strict=False)
        tied = set(getattr(model, "all_tied_weights_keys", {}) or {})
        missing = [name for name in missing if name not in tied]
        if missing or unexpected:
            raise CheckpointError(f"weights do not match config.json: {(missing + unexpected)[:3]}", where=str(path),
                                  hint="the config and the weights come from different models")
        if tied:
            model.tie_weights()
        return model.eval()

    def state_dict(self, path: Path, *, verify: bool = True, like: Path | None = None) -> dict[str, torch.Tensor]:
        """Every tensor in float32 (merges are float32). A pretrained base gets the zero routers the
        experts it is merged with (``like``) have, so both name the same tensors."""
        path = Path(path)
        _refuse_pickles(path)
        if _is_dmo_checkpoint(path):
            from dmo.models.checkpoint import read_state_dict

            state = read_state_dict(path, verify=verify)  # saved under the in-memory names (see save)
        else:  # a user's checkpoint, maybe sharded, maybe in transformers' legacy key format
            state = dict(self.load(path).state_dict())
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        mod = getattr(read_hf_config(like), MOD_KEY, None) if like is not None else None
        if mod and not any(".router." in name for name in state):
            hidden = read_hf_config(path).get_text_config().hidden_size
            prefix = _layers_prefix(state)
            for layer, rho in enumerate(mod["retention"]):
                if rho < 1.0:
                    state[f"{prefix}.{layer}.router.weight"] = torch.zeros(1, hidden)
                    state[f"{prefix}.{layer}.router.bias"] = torch.zeros(1)
        return state

    def proxy_model(self, config: DmoConfig, base: Path) -> nn.Module:
        return self.initial_model(config, None, None, seed=0)

    def save(self, model: nn.Module, out_dir: Path, *, encoder: HfEncoder, extra_files: Mapping[str, str | bytes]) -> str:
        from dmo.models.checkpoint import save_checkpoint

        # In-memory parameter names (transformers would rename LLaVA's to its legacy layout), so
        # dmo reads its own checkpoints without transformers' key conversion.
        return save_checkpoint(model, out_dir, tokenizer=encoder, extra_files=extra_files,
                               save_kwargs={"save_original_format": False}).total_sha256

    def fingerprint(self, path: Path) -> str:
        path = Path(path)
        if _is_dmo_checkpoint(path):
            from dmo.models.checkpoint import read_manifest

            # dmo never re-makes a Hugging Face base, so its whole-checkpoint sha256 (what stores
            # already key its rows on) stays its fingerprint.
            return read_manifest(path).total_sha256
        return _content_fingerprint(path, _signature(path))

    # ------------------------------------------------------------------ parameters

    def _arch(self, model: nn.Module) -> Architecture:
        return architecture(model.config, Path(str(getattr(model.config, "_name_or_path", "model"))))

    def freeze_vision(self, model: nn.Module) -> None:
        prefix = self._arch(model).vision_prefix
        for name, parameter in model.named_parameters():
            if name.startswith(prefix):
                parameter.requires_grad_(False)

    def lora_targets(self, settings: LoraSettings) -> tuple[str, list[str]]:
        modules = "|".join(settings.target_modules)
        return rf"model\.language_model\.layers\.\d+\.(self_attn|mlp)\.({modules})", ["router", "multi_modal_projector"]

    def merge_exclude(self, path: Path) -> tuple[str, ...]:
        return (f"{architecture(read_hf_config(Path(path)), Path(path)).vision_prefix}*",)

    # ------------------------------------------------------------------ merging

    def check_compatible(self, base: Path, experts: Sequence[Path]) -> None:
        from dmo.merging.compat import check_fingerprint, recorded_base_fingerprint

        base = Path(base)
        base_config = read_hf_config(base)
        fingerprint = self.fingerprint(base)
        reference = _comparable(base_config)
        mods = set()
        for expert in map(Path, experts):
            config = read_hf_config(expert)
            check_fingerprint(fingerprint, recorded_base_fingerprint(expert, config), expert=str(expert))
            for key, value in reference.items():
                got = _comparable(config).get(key)
                if got != value:
                    raise MergeError(f"config setting {key}: expected {value!r}, got {got!r}", where=str(expert),
                                     hint="experts must share the base's model config")
            mods.add(_routing_key(getattr(config, MOD_KEY, None)))
        if len(mods) > 1:
            raise MergeError("the experts have different MoD settings", where=", ".join(map(str, experts)),
                             hint="experts must keep one MoD schedule, retention and TanhNorm")

    def check_routing(self, model: nn.Module, expert: Path) -> None:
        ours, theirs = getattr(model.config, MOD_KEY, None), getattr(read_hf_config(Path(expert)), MOD_KEY, None)
        if _routing_key(ours) != _routing_key(theirs):
            raise MergeError(f"is routed {_routing_key(theirs)}, the project {_routing_key(ours)}", where=str(expert),
                             hint="experts of one search share one routing: match model.mod to the expert's")

    # ------------------------------------------------------------------ inference

    def generate(self, model: nn.Module, batch: Mapping[str, torch.Tensor], *, max_new_tokens: int,
                 eos_id: int, pad_id: int) -> torch.Tensor:
        """Greedy decoding by transformers' generate(), with a KV cache that holds each routed layer's kept
        tokens (dmo.models.hf_routing); uncached where the first layer is routed."""
        from dmo.models.hf_routing import generation_caches

        inputs = dict(batch)
        width = inputs["input_ids"].shape[1]
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                 use_cache=generation_caches(model) if hasattr(model, "_dmo_routing") else True,
                                 eos_token_id=eos_id, pad_token_id=pad_id,
                                 suppress_tokens=vision_token_ids(model.config))
        return out[:, width:]

    def generate_scored(self, model: nn.Module, batch: Mapping[str, torch.Tensor], answers: torch.Tensor,
                        answer_mask: torch.Tensor, *, max_new_tokens: int, eos_id: int,
                        pad_id: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The greedy answers of :meth:`generate` and the reference answers' likelihoods from its cache
        (dmo.models.hf_scoring); None where generation keeps no cache (a routed first layer)."""
        from dmo.models.hf_routing import generation_caches
        from dmo.models.hf_scoring import generate_with_likelihood

        if hasattr(model, "_dmo_routing") and not generation_caches(model):
            return None
        return generate_with_likelihood(model, batch, answers, answer_mask, max_new_tokens=max_new_tokens,
                                        eos_id=eos_id, pad_id=pad_id, suppress=vision_token_ids(model.config))

    def mean_gates(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        from dmo.models.hf_routing import routing_of

        if getattr(model, "_dmo_routing", None) is None:
            return {}
        with torch.no_grad():
            routing = routing_of(model, lambda: model(**batch))
        layers = [i for i, rho in enumerate(getattr(model.config, MOD_KEY)["retention"]) if rho < 1.0]
        return {f"layer{i}_mean_gate": float(r.mean_gate) for i, r in zip(layers, routing) if r.mean_gate is not None}

    # ------------------------------------------------------------------ efficiency

    def efficiency(self, model_config: HfModConfig) -> dict[str, Any]:
        from dmo.models.efficiency import efficiency_vs_dense

        n_vis = model_config.num_image_tokens
        report = efficiency_vs_dense(model_config, n_text=TYPICAL_TEXT_TOKENS, n_vis=n_vis)
        return {**model_config.mod_settings(), "flops_ratio": report.flops_ratio, "kv_ratio": report.kv_ratio,
                "n_text": TYPICAL_TEXT_TOKENS, "n_vis": n_vis}


def _layers_prefix(state: Mapping[str, torch.Tensor]) -> str:
    for name in state:
        if ".language_model.layers." in name:
            return name.split(".layers.")[0] + ".layers"
    raise CheckpointError("no language-model decoder layers among the tensors")


def _routing_key(mod: Mapping[str, Any] | None) -> str:
    """What must be equal for two experts to merge: their MoD settings, where any layer is routed. A dense
    schedule routes nothing, so its expert merges with one trained without dmo (no ``dmo_mod`` at all)."""
    if not mod or all(rho >= 1.0 for rho in mod.get("retention", ())):
        return "unrouted"
    return json.dumps(dict(mod), sort_keys=True)


def _comparable(config: Any) -> dict[str, Any]:
    """A config's fields that decide whether weights can be interpolated (not names, dtypes or paths)."""
    data = config.to_dict()
    for key in (MOD_KEY, "_name_or_path", "transformers_version", "dtype", "torch_dtype", "architectures",
                "use_cache"):
        data.pop(key, None)
    for sub in ("text_config", "vision_config"):
        if isinstance(data.get(sub), dict):
            for key in ("_name_or_path", "transformers_version", "dtype", "torch_dtype", "use_cache"):
                data[sub].pop(key, None)
    return data


def _signature(path: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple(sorted((p.relative_to(path).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                        for p in path.rglob("*") if p.is_file()))


@functools.lru_cache(maxsize=16)
def _content_fingerprint(path: Path, signature: tuple[tuple[str, int, int], ...]) -> str:
    """sha256 over every file of a pretrained checkpoint, once per process while it is unchanged."""
    return total_sha256({name: file_sha256(path / name) for name, _, _ in signature})
