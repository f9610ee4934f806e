"""Validation of mixture weight vectors before anything is merged.

A weight vector names one proxy: one non-negative, finite weight per expert.
Every entry point (the bank, the CLI, mergekit YAML export) goes through
:func:`validate_weights`, so a bad vector fails with the same message everywhere
instead of producing a NaN model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dmo.errors import MergeError

SIMPLEX_TOLERANCE = 1e-6
NUMBERS_HINT = "give comma-separated numbers, e.g. 0.5,0.5"


def parse_weights(text: str, *, where: str = "--weights") -> tuple[float, ...]:
    """Parse ``"0.5,0.25,0.25"`` into floats (the CLI's spelling of a weight vector)."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in parts):
        raise MergeError(
            f"cannot read weights {text!r}", where=where, hint=NUMBERS_HINT
        )
    values = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise MergeError(
                f"weight {part!r} is not a number", where=where, hint=NUMBERS_HINT
            ) from None
    return tuple(values)


def validate_weights(
    weights: Sequence[float],
    num_experts: int,
    *,
    require_simplex: bool = False,
    normalize: bool = False,
    where: str = "weights",
) -> tuple[float, ...]:
    """Return the weights as floats, or raise MergeError naming the first problem.

    ``require_simplex`` demands ``sum(w) == 1`` (within 1e-6); ``normalize``
    instead rescales a vector with a positive sum onto the simplex.
    """
    values = tuple(float(w) for w in weights)
    if len(values) != num_experts:
        raise MergeError(
            f"got {len(values)} weights for {num_experts} experts",
            where=where,
            hint="give exactly one weight per expert, in the order of the experts",
        )
    for index, value in enumerate(values):
        if not math.isfinite(value):
            raise MergeError(f"weight {index} is {value}", where=where, hint="must be finite")
        if value < 0:
            raise MergeError(
                f"weight {index} is negative ({value})", where=where, hint="weights must be >= 0"
            )
    total = math.fsum(values)
    if normalize:
        if total <= 0:
            raise MergeError(
                "weights sum to 0 and cannot be normalised", where=where, hint="give a weight > 0"
            )
        return tuple(value / total for value in values)
    if require_simplex and abs(total - 1.0) > SIMPLEX_TOLERANCE:
        raise MergeError(
            f"weights sum to {total:.6g}, not 1",
            where=where,
            hint="make them sum to 1, or pass --normalize to rescale them",
        )
    return values
