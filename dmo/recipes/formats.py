"""Recipe renderers: a mixture in the formats trainers read. Pure: values in, text out."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import yaml

from dmo.data.mixture import mixture_counts
from dmo.recipes.selection import DomainShare

PROB_DIGITS = 6
# What LLaMA-Factory needs that a data recipe cannot know: the user's model and run.
MODEL_KEYS = (
    ("model_name_or_path", "/path/to/your/base/checkpoint"),
    ("template", "the chat template of that model (e.g. qwen2_vl, llava)"),
    ("stage", "sft"),
    ("do_train", "true"),
    ("finetuning_type", "lora (or full)"),
    ("output_dir", "saves/dmo-recipe"),
)


def interleave_probs(weights: Sequence[float]) -> str:
    """K probabilities with PROB_DIGITS decimals that sum to exactly 1 (largest remainder)."""
    scale = 10**PROB_DIGITS
    units = mixture_counts(weights, scale)
    text = ",".join(f"{Decimal(u) / Decimal(scale):.{PROB_DIGITS}f}" for u in units)
    assert sum(Decimal(p) for p in text.split(",")) == 1
    return text


@dataclass(frozen=True)
class RunLength:
    """How many optimiser steps make a budget of N samples on G GPUs with batch b and accumulation a."""

    budget: int
    gpus: int
    per_device_batch: int
    grad_accum: int

    @property
    def global_batch(self) -> int:
        return self.gpus * self.per_device_batch * self.grad_accum

    @property
    def max_steps(self) -> int:
        return math.ceil(self.budget / self.global_batch)

    @property
    def samples_seen(self) -> int:
        return self.max_steps * self.global_batch

    def describe(self) -> str:
        text = (f"max_steps {self.max_steps} × global batch {self.global_batch} "
                f"({self.gpus} GPU × {self.per_device_batch} per device × {self.grad_accum} accumulation)")
        extra = self.samples_seen - self.budget
        if extra:
            text += f" = {self.samples_seen:,} samples: {extra} more than the budget, as the last step is a full batch"
        return text


def llamafactory_recipe(
    *, dataset_dir: str, datasets: Sequence[str], shares_: Sequence[DomainShare], run: RunLength,
    strategy: str, header: Sequence[str], run_command: str,
) -> str:
    """A LLaMA-Factory training YAML: the data keys, and a header naming the keys to add.

    ``exact`` (default): each domain's file holds exactly its share, ``mix_strategy: concat``.
    ``interleave``: the reference study's ``interleave_under`` with ``interleave_probs``, where
    the mixture holds only in expectation and stops when the first dataset runs out.
    """
    keys: dict[str, object] = {"dataset_dir": dataset_dir, "dataset": ",".join(datasets)}
    if strategy == "interleave":
        keys |= {"mix_strategy": "interleave_under", "interleave_probs": interleave_probs([s.weight for s in shares_])}
    else:
        keys |= {"mix_strategy": "concat"}
    keys |= {
        "per_device_train_batch_size": run.per_device_batch,
        "gradient_accumulation_steps": run.grad_accum,
        "max_steps": run.max_steps,
    }
    lines = [*header, "", "Before training, add the keys of your model and run, for example:"]
    lines += [f"  {key}: {value}" for key, value in MODEL_KEYS]
    lines += ["  cutoff_len: 2048  # raise it for long samples", "", f"Then: {run_command}"]
    comment = "".join(f"# {line}".rstrip() + "\n" for line in lines)
    return comment + yaml.safe_dump(keys, sort_keys=False)


def json_recipe(payload: dict) -> str:
    return json.dumps(payload, indent=2, sort_keys=False) + "\n"


__all__ = ["MODEL_KEYS", "RunLength", "interleave_probs", "json_recipe", "llamafactory_recipe"]
