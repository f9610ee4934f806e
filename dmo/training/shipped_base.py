"""A base trained once and kept with the project: adopted, not trained again.

The demo ships its base in ``configs/bases/demo`` (made by ``dmo train base -c configs/demo.yaml
--from-scratch --out configs/bases/demo``), as a user's base would be pretrained once and reused.
Before any row is written, adopting checks that

- every file of the checkpoint matches its manifest (nothing truncated or edited),
- its weights are the ones ``training.pretrained_base.weights_sha256`` pins, and
- it was trained under the cache key this config would train its base under (same data, encoder,
  model, base settings and seed), so the experts that start from it are those a base trained
  here would give: training is deterministic on the CPU, and on the platform the base was trained
  on (``dmo_training.json`` records it) the weights are bit-identical. On a CPU with other kernels
  a retrained base would differ in its last bits; the shipped one is the same everywhere.

The adopted row has a key of its own (the trained key plus the shipped checkpoint's hash), so
``--from-scratch`` still trains a base beside it in the same store.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from dmo.config.schema import DmoConfig
from dmo.errors import CheckpointError, ConfigError
from dmo.models.checkpoint import verify_checkpoint
from dmo.training.loop import METRICS_FILE, SUMMARY_FILE, read_loss_curve

WEIGHTS_FILE = "model.safetensors"


def _regenerate_hint(path: Path) -> str:
    return f"retrain it: dmo train base -c CONFIG --from-scratch --out {path}, then pin the sha256 it prints"


def check_shippable(path: Path) -> None:
    """Refuse to ship a base trained before dmo recorded training keys: a project could not check it.
    (`dmo train base --from-scratch` reuses a base its store already has, and such a base is one.)"""
    if not _summary(path).get("cache_key"):
        raise CheckpointError(
            "this base was trained before dmo recorded the training key a shipped base is checked by",
            where=str(path / SUMMARY_FILE),
            hint="train it again where no store has it: dmo train base -c CONFIG --from-scratch --out DIR "
                 "--store-url sqlite:///fresh.sqlite (with a fresh project.workdir)",
        )


@dataclass(frozen=True)
class ShippedBase:
    """A shipped base that passed the checks: what its store row records."""

    path: Path
    sha256: str  # the manifest's total, as for a trained checkpoint
    key: str  # its row's cache key
    metrics: dict


def check_shipped_base(config: DmoConfig, *, trained_key: str) -> ShippedBase:
    """``training.pretrained_base``, checked as the module says (it raises naming the file or field)."""
    shipped = config.training.pretrained_base
    assert shipped is not None
    path = shipped.path.resolve()
    manifest = verify_checkpoint(path)  # CheckpointError naming the first bad file
    weights = manifest.files.get(WEIGHTS_FILE)
    if weights != shipped.weights_sha256:
        raise CheckpointError(
            f"weights sha256 {weights or 'missing'} is not the pinned {shipped.weights_sha256}",
            where=str(path / WEIGHTS_FILE),
            hint="training.pretrained_base.weights_sha256 pins the weights; " + _regenerate_hint(path),
        )
    summary = _summary(path)
    if summary.get("cache_key") != trained_key:
        raise ConfigError(
            "this base was trained under another configuration (data, model, base settings or seed differ "
            f"from the config's: trained as {str(summary.get('cache_key'))[:12]}, the config's base is {trained_key[:12]})",
            where=f"training.pretrained_base.path ({path})",
            hint=_regenerate_hint(path),
        )
    key = hashlib.sha256(json.dumps({"format": 1, "kind": "base", "shipped": manifest.total_sha256,
                                     "trained_as": trained_key}, sort_keys=True).encode()).hexdigest()
    return ShippedBase(
        path=path,
        sha256=manifest.total_sha256,
        key=key,
        metrics={
            "final_loss": summary.get("final_loss"),
            "train_seconds": summary.get("train_seconds"),
            "loss_curve": _loss_curve(path / METRICS_FILE),
            "shipped": str(path),
        },
    )


def _summary(path: Path) -> dict:
    try:
        summary = json.loads((path / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"no readable {SUMMARY_FILE}: {error}", where=str(path / SUMMARY_FILE),
                              hint="a shipped base is a checkpoint dmo trained") from None
    if not isinstance(summary, dict):
        raise CheckpointError(f"{SUMMARY_FILE} is not an object", where=str(path / SUMMARY_FILE))
    return summary


def _loss_curve(path: Path) -> list[list[float]]:
    try:
        return [list(point) for point in read_loss_curve(path)]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"unreadable training metrics: {error}", where=str(path),
                              hint="a shipped base is a checkpoint dmo trained, with its training_metrics.jsonl") from None
