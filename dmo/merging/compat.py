"""The compatibility guard: refuse to merge experts that do not share a base.

Interpolating weights is only meaningful between fine-tunes of one base with
one architecture and one set of MoD settings (top-k routing makes the same
weights mean different computations under another schedule). Everything
here raises :class:`~dmo.errors.MergeError` naming the mismatch — which
tensor or which setting, expected (the base's) vs got (the expert's).

Two levels:

* state dicts: same tensor names, shapes and dtypes (:func:`check_state_dict`);
* checkpoints: same base fingerprint (the base manifest's ``model_sha256``:
  weights, config and tokenizer, not its training records), which an expert
  records as ``base_sha256`` in ``dmo_training.json`` or as ``dmo_base_sha256``
  in its config (experts recorded by earlier versions hold the manifest's
  ``total_sha256``, still accepted; experts that recorded none are checked by
  tensors only), same model config and MoD settings (:func:`check_checkpoints`),
  before any weights are read.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dmo.errors import MergeError

if TYPE_CHECKING:
    from dmo.models.configuration_mod_mllm import ModMLLMConfig

# Config fields compared through config.mod_settings() (semantics, not spelling) or not at all.
SKIPPED_CONFIG_FIELDS = frozenset({"model_type", "initializer_range", "tanh_alpha", "tanh_beta"})
# Where an expert may record its base's fingerprint (the base manifest's model_sha256).
TRAINING_SUMMARY = "dmo_training.json"
FINGERPRINT_KEYS = ("base_sha256", "dmo_base_sha256")


def check_state_dict(
    base: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor], *, expert: str
) -> None:
    """The expert has exactly the base's tensors, with the same shapes and dtypes."""
    missing = [name for name in base if name not in state_dict]
    if missing:
        raise MergeError(
            f"tensor {missing[0]} of the base is missing from the expert"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            where=expert,
            hint="experts must be fine-tunes of the base with the same architecture",
        )
    extra = [name for name in state_dict if name not in base]
    if extra:
        raise MergeError(
            f"the expert has tensor {extra[0]} that the base lacks"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""),
            where=expert,
            hint="experts must be fine-tunes of the base with the same architecture",
        )
    for name, reference in base.items():
        tensor = state_dict[name]
        if tensor.shape != reference.shape:
            raise MergeError(
                f"tensor {name}: shape expected {tuple(reference.shape)}, "
                f"got {tuple(tensor.shape)}",
                where=expert,
                hint="experts must share the base's model config",
            )
        if tensor.dtype != reference.dtype:
            raise MergeError(
                f"tensor {name}: dtype expected {_dtype_name(reference.dtype)}, "
                f"got {_dtype_name(tensor.dtype)}",
                where=expert,
                hint="save experts in the base's dtype",
            )


def check_configs(base: ModMLLMConfig, config: ModMLLMConfig, *, expert: str) -> None:
    """Same MoD settings and same model fields as the base (MoD settings are reported first)."""
    base_mod, expert_mod = base.mod_settings(), config.mod_settings()
    for key in sorted(set(base_mod) | set(expert_mod)):
        if base_mod.get(key) != expert_mod.get(key):
            raise MergeError(
                f"MoD setting {key}: expected {base_mod.get(key)!r}, got {expert_mod.get(key)!r}",
                where=expert,
                hint="experts must keep the base's MoD settings (schedule, retention, TanhNorm)",
            )
    for key in _model_fields(base):
        expected, got = getattr(base, key, None), getattr(config, key, None)
        if expected != got:
            raise MergeError(
                f"config setting {key}: expected {expected!r}, got {got!r}",
                where=expert,
                hint="experts must share the base's model config",
            )


def _model_fields(config: ModMLLMConfig) -> list[str]:
    # The config class's own fields; generic transformers flags (return_dict, ...) do not matter.
    # mod_* fields are compared through mod_settings(), which says what they mean.
    fields = vars(type(config)).get("__annotations__", {})
    return sorted(
        {f for f in fields if f not in SKIPPED_CONFIG_FIELDS and not f.startswith(("mod_", "_"))}
    )


def check_fingerprint(base_fingerprint: str, recorded: str | None, *, expert: str,
                      also: Collection[str] = ()) -> None:
    """An expert that recorded its base's sha256 must name this base (``also``: other names it may go by,
    such as the whole-checkpoint sha256 earlier versions recorded)."""
    if recorded is not None and recorded != base_fingerprint and recorded not in also:
        raise MergeError(
            f"the expert was trained from base {recorded[:12]}…, "
            f"not from this base ({base_fingerprint[:12]}…)",
            where=expert,
            hint="merge only experts fine-tuned from the given --base",
        )


def recorded_base_fingerprint(expert_dir: Path, config: ModMLLMConfig) -> str | None:
    """The base sha256 an expert recorded (config attribute or training summary), else None."""
    for key in FINGERPRINT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, str) and value:
            return value
    summary_path = expert_dir / TRAINING_SUMMARY
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except ValueError:
            return None
        for key in FINGERPRINT_KEYS:
            value = summary.get(key) if isinstance(summary, dict) else None
            if isinstance(value, str) and value:
                return value
    return None


def check_checkpoints(base_dir: str | Path, expert_dirs: Sequence[str | Path]) -> None:
    """Checkpoint-level guard, before any weights are read: fingerprint, config and MoD settings."""
    from dmo.models.checkpoint import read_config, read_manifest

    base_dir = Path(base_dir)
    base_config = read_config(base_dir)
    manifest = read_manifest(base_dir)
    for expert_dir in map(Path, expert_dirs):
        config = read_config(expert_dir)
        recorded = recorded_base_fingerprint(expert_dir, config)
        check_fingerprint(manifest.model_sha256, recorded, expert=str(expert_dir), also=(manifest.total_sha256,))
        check_configs(base_config, config, expert=str(expert_dir))


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
