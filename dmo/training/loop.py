"""The one training loop. Base, experts and mixture models differ only in data.

A run trains on a per-sample stream with domain probabilities `weights`
(uniform for the base, one-hot for an expert, `w` for a mixture model):
AdamW, linear warmup + cosine decay, gradient clipping, seeded; full
fine-tuning or LoRA (folded before saving); the vision tower frozen unless
the settings say otherwise. Resumable state is saved every
`checkpoint_every` steps; the final checkpoint is written atomically with a
sha256 manifest, so an interrupted run never leaves a checkpoint behind.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dmo.config.schema import TrainingSettings
from dmo.data.encoding import IGNORE, EncodedSplit, on_device, training_batch
from dmo.data.mixture import MixtureStream
from dmo.data.prepared import PreparedData
from dmo.mixture import Mixture
from dmo.models.backends.base import ModelBackend
from dmo.runtime import numeric_platform
from dmo.training.lora import adapter_files, add_lora, fold_lora
from dmo.training.resume import ResumeState, load_resume_state, resume_dir_for, save_resume_state
from dmo.training.schedule import lr_at

# What a trained checkpoint keeps beside its weights: the run's summary and its per-step metrics.
SUMMARY_FILE = "dmo_training.json"
METRICS_FILE = "training_metrics.jsonl"


@dataclass(frozen=True)
class TrainingRun:
    """What one run trains on: a mixture over the project's domains and the settings."""

    name: str
    mixture: Mixture  # over the domains of PreparedData.names, in that order
    settings: TrainingSettings
    seed: int
    base_sha256: str | None = None  # the checkpoint it starts from; the merge guard compares it
    # The store's cache key of the model (dmo.training.jobs.cache_key), kept in the checkpoint so that a
    # shipped base can be checked against the config that adopts it (dmo.training.shipped_base).
    cache_key: str | None = None


@dataclass(frozen=True)
class TrainingResult:
    checkpoint: Path
    sha256: str
    steps: int
    resumed_from_step: int
    final_loss: float
    seconds: float
    samples_per_second: float
    loss_curve: tuple[tuple[int, float], ...] = ()  # (step, loss), at most CURVE_POINTS


OnStep = Callable[[int, int, float], None]  # (step, total steps, loss)

# The store keeps this many (step, loss) points per model: enough for a chart, small as JSON.
CURVE_POINTS = 200


def mixture_split(data: PreparedData, weights: Sequence[float]) -> tuple[EncodedSplit, list[int], list[int]]:
    """The train splits of domains with positive weight, concatenated; offsets and sizes per domain."""
    parts, offsets, sizes, offset = [], [], [], 0
    for name, w in zip(data.names, weights, strict=True):
        if w > 0:
            split = data.encoded(name, "train")
            parts.append(split)
            offsets.append(offset)
            sizes.append(len(split))
            offset += len(split)
        else:  # never drawn: a placeholder keeps domain indices aligned with the weights
            offsets.append(offset)
            sizes.append(1)
    return EncodedSplit.concat(parts), offsets, sizes


def batch_loss(model: torch.nn.Module, split: EncodedSplit, indices: Sequence[int], pad_id: int,
               device: torch.device) -> torch.Tensor:
    """The batch's mean loss over its answer tokens. Samples with different counts of vision tokens
    (images beside videos) run as one forward per count, because a routed layer keeps one count per
    row; each group's mean is weighted by its answer tokens, which gives the whole batch's mean."""
    groups = split.images.groups(indices)
    batches = [on_device(training_batch(split, group, pad_id), device) for group in groups]
    if len(batches) == 1:
        return model(**batches[0]).loss
    tokens = [int((batch["labels"][:, 1:] != IGNORE).sum()) for batch in batches]
    return sum(model(**batch).loss * (n / sum(tokens)) for batch, n in zip(batches, tokens))  # type: ignore[return-value]


def train(
    run: TrainingRun,
    model: torch.nn.Module,
    data: PreparedData,
    out_dir: Path,
    *,
    backend: ModelBackend,
    on_step: OnStep | None = None,
    device: torch.device | None = None,
) -> TrainingResult:
    """Train ``model`` on ``run``'s mixture and save it atomically to ``out_dir``.

    ``on_step(step, total, loss)`` is called after every optimiser step (a
    progress bar, in the CLI).
    """
    settings = run.settings
    if run.mixture.domains != data.names:
        raise ValueError(f"the run's mixture is over {run.mixture.domains}, the data has {data.names}")
    weights = run.mixture.weights
    torch.manual_seed(run.seed)
    out_dir = Path(out_dir)
    resume_dir = resume_dir_for(out_dir)
    metrics_path = out_dir.parent / f"{out_dir.name}.metrics.jsonl"
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    device = device or torch.device("cpu")
    model = model.to(device)  # before LoRA, so its factors are made where the layers they adapt live
    if settings.freeze_vision:
        backend.freeze_vision(model)
    if settings.finetune == "lora":
        targets, trained_in_full = backend.lora_targets(settings.lora)
        trainable_model = add_lora(model, settings.lora, targets=targets, modules_to_save=trained_in_full)
    else:
        trainable_model = model
    parameters = [p for p in trainable_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        parameters, lr=settings.lr, betas=(0.9, 0.95), weight_decay=settings.weight_decay
    )

    split, offsets, sizes = mixture_split(data, weights)
    stream = MixtureStream(weights, sizes, seed=run.seed)
    resumed = load_resume_state(resume_dir, trainable_model, optimizer)
    start_step = resumed.step if resumed else 0
    loss_value = resumed.last_loss if resumed else float("nan")
    if resumed:
        stream.restore(resumed.stream)
    _truncate_metrics(metrics_path, start_step)

    trainable_model.train()
    started = time.perf_counter()
    with metrics_path.open("a", encoding="utf-8") as metrics:
        for step in range(start_step, settings.steps):
            lr = lr_at(step, lr=settings.lr, total_steps=settings.steps, warmup_steps=settings.warmup_steps, min_lr_ratio=settings.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            indices = [offsets[d] + i for d, i in stream.take(settings.batch_size)]
            loss = batch_loss(trainable_model, split, indices, data.pad_id, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, settings.grad_clip)
            optimizer.step()
            loss_value = float(loss.detach())
            metrics.write(json.dumps({"step": step + 1, "loss": loss_value, "lr": lr, "grad_norm": float(grad_norm), "elapsed_s": time.perf_counter() - started}) + "\n")
            done = step + 1
            if on_step is not None:
                on_step(done, settings.steps, loss_value)
            if settings.checkpoint_every and done % settings.checkpoint_every == 0 and done < settings.steps:
                metrics.flush()
                save_resume_state(resume_dir, trainable_model, optimizer, ResumeState(done, stream.state(), loss_value))

    seconds = time.perf_counter() - started
    adapter = adapter_files(trainable_model)  # before folding, which consumes the adapter
    dense = fold_lora(trainable_model)
    dense.eval()
    summary = {
        "run": run.name,
        "weights": run.mixture.as_dict(),
        "settings": settings.model_dump(mode="json"),
        "seed": run.seed,
        "base_sha256": run.base_sha256,
        "cache_key": run.cache_key,
        "platform": numeric_platform(),
        "final_loss": loss_value,
        "train_seconds": seconds,
    }
    sha256 = backend.save(
        dense,
        out_dir,
        encoder=data.encoder,
        extra_files={
            SUMMARY_FILE: json.dumps(summary, indent=2),
            METRICS_FILE: metrics_path.read_text(encoding="utf-8"),
            **adapter,
        },
    )
    shutil.rmtree(resume_dir, ignore_errors=True)
    trained_steps = settings.steps - start_step
    return TrainingResult(
        checkpoint=out_dir,
        sha256=sha256,
        steps=settings.steps,
        resumed_from_step=start_step,
        final_loss=loss_value,
        seconds=seconds,
        samples_per_second=trained_steps * settings.batch_size / max(seconds, 1e-9),
        loss_curve=read_loss_curve(metrics_path),
    )


def read_loss_curve(path: Path, max_points: int = CURVE_POINTS) -> tuple[tuple[int, float], ...]:
    """(step, loss) from a metrics file, evenly thinned to at most `max_points`, last step kept."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    if len(rows) > max_points:
        stride = -(-len(rows) // max_points)
        thinned = rows[::stride]
        rows = thinned if thinned[-1] is rows[-1] else thinned[: max_points - 1] + [rows[-1]]
    return tuple((int(row["step"]), float(row["loss"])) for row in rows)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines past the resumed step, so a resumed run logs each step once."""
    if not path.exists():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
