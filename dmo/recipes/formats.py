"""Recipe renderers: a mixture in the formats trainers read. Pure: text in, text out."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from decimal import Decimal

import yaml

from dmo.data.mixture import mixture_counts

PROB_DIGITS = 6


def interleave_probs(weights: Sequence[float]) -> str:
    """K probabilities with PROB_DIGITS decimals that sum to exactly 1 (largest remainder)."""
    scale = 10**PROB_DIGITS
    units = mixture_counts(weights, scale)
    text = ",".join(f"{Decimal(u) / Decimal(scale):.{PROB_DIGITS}f}" for u in units)
    assert sum(Decimal(p) for p in text.split(",")) == 1
    return text


def llamafactory_yaml(
    *, datasets: Sequence[str], weights: Sequence[float], budget: int, batch_size: int, header: str
) -> str:
    """A LLaMA-Factory training fragment: the mixture as `interleave_under` probabilities.

    `interleave_under` stops when the first dataset runs out; `max_steps` caps
    the run at the budget so every mixture sees the same number of samples.
    """
    fragment = {
        "dataset": ",".join(datasets),
        "mix_strategy": "interleave_under",
        "interleave_probs": interleave_probs(weights),
        "per_device_train_batch_size": batch_size,
        "max_steps": math.ceil(budget / batch_size),
    }
    body = yaml.safe_dump(fragment, sort_keys=False)
    return "".join(f"# {line}\n" for line in header.splitlines()) + body


def json_recipe(payload: dict) -> str:
    return json.dumps(payload, indent=2, sort_keys=False) + "\n"
