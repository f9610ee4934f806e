"""The mixture simplex as a fixed box: stick-breaking between u ∈ [0,1]^(K−1) and w ∈ Δ^(K−1).

Every Optuna sampler (TPE, GP, CMA-ES, QMC) wants a static search space, but a
mixture has K weights with one constraint. Optuna's own recipe (normalised
−log u) spends K parameters on K−1 degrees of freedom, and dropping one weight
as ``1 − Σ`` biases the search. Stick-breaking with Beta(1, K−i) quantiles maps
the uniform cube onto the *uniform* simplex, one-to-one on the interior:

    v_i = 1 − (1 − u_i)^{1/(K−i)}          i = 1..K−1 (1-based)
    p_i = v_i · Π_{j<i} (1 − v_j)          p_K = Π_{j<K} (1 − v_j)

Since v_i ~ Beta(1, K−i) when u_i ~ U(0,1), p ~ Dirichlet(1, …, 1).
Powers are computed as ``−expm1(m·log1p(−x))`` so small u and v keep their
relative precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dmo.errors import MergeError

SUM_TOLERANCE = 1e-6
# Rounding in upstream arithmetic can leave -1e-17 where a zero was meant; such
# values are zeros, anything more negative is a real mistake.
NEGATIVE_TOLERANCE = 1e-12


def _one_minus_power(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """1 − (1 − x)^exponent, accurate for small x, exact at x = 0 and x = 1."""
    with np.errstate(divide="ignore"):
        return -np.expm1(exponent * np.log1p(-x))


def u_to_weights(u: Sequence[float] | np.ndarray) -> np.ndarray:
    """Map K−1 numbers in [0, 1] to K mixture weights (≥ 0, summing to 1)."""
    u_arr = np.asarray(u, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(u_arr)) or np.any(u_arr < 0.0) or np.any(u_arr > 1.0):
        raise ValueError(f"stick-breaking coordinates must lie in [0, 1], got {u_arr.tolist()}")
    num_domains = u_arr.size + 1
    remaining_sticks = num_domains - np.arange(1, num_domains)  # K−i for i = 1..K−1
    v = _one_minus_power(u_arr, 1.0 / remaining_sticks)
    v = np.clip(v, 0.0, 1.0)
    # Stick left before break i: Π_{j<i}(1 − v_j); the last weight takes what is left.
    stick_left = np.concatenate(([1.0], np.cumprod(1.0 - v)))
    weights = np.empty(num_domains, dtype=np.float64)
    weights[:-1] = v * stick_left[:-1]
    weights[-1] = stick_left[-1]
    return weights / weights.sum()


def weights_to_u(w: Sequence[float] | np.ndarray) -> np.ndarray:
    """Inverse of :func:`u_to_weights`: K weights on the simplex → K−1 numbers in [0, 1].

    Where the stick is used up (all later weights are zero) the later breaks are
    undefined; they are set to 0 so the result is deterministic, and it still
    maps back to the same w.
    """
    w_arr = np.asarray(w, dtype=np.float64).reshape(-1)
    if w_arr.size < 1 or not np.all(np.isfinite(w_arr)) or np.any(w_arr < -NEGATIVE_TOLERANCE):
        raise ValueError(f"weights must be finite and non-negative, got {w_arr.tolist()}")
    w_arr = np.clip(w_arr, 0.0, None)
    total = w_arr.sum()
    if total <= 0.0:
        raise ValueError("weights must not all be zero")
    w_arr = w_arr / total
    num_domains = w_arr.size
    # Stick left before break i as a suffix sum of the weights, not 1 − prefix sum:
    # it avoids cancellation when the leading weights take almost everything.
    suffix = np.cumsum(w_arr[::-1])[::-1][:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(suffix > 0.0, w_arr[:-1] / np.where(suffix > 0.0, suffix, 1.0), 0.0)
    v = np.clip(v, 0.0, 1.0)
    remaining_sticks = num_domains - np.arange(1, num_domains)
    u = _one_minus_power(v, remaining_sticks.astype(np.float64))
    return np.clip(u, 0.0, 1.0)


def validate_weights(
    w: Sequence[float] | Mapping[str, float] | np.ndarray,
    names: Sequence[str],
    *,
    normalize: bool = False,
    where: str = "weights",
    normalize_flag: str | None = None,
) -> np.ndarray:
    """Check a user's mixture against the domains and return it as a float64 array.

    A mapping is matched to ``names`` by key; a sequence by position. With
    ``normalize=True`` any non-negative, non-zero vector is rescaled to sum to 1
    (handy for ratios such as ``[3, 1]``); otherwise the sum must already be 1.
    ``normalize_flag`` names the caller's switch for that (e.g. ``--normalize``), so the
    error tells the user what to pass.
    """
    names = list(names)
    expected = ", ".join(names)
    if isinstance(w, Mapping):
        missing = [n for n in names if n not in w]
        unknown = sorted(set(w) - set(names))
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown {', '.join(unknown)}")
            raise MergeError(
                f"weights name the wrong domains ({'; '.join(parts)})",
                where=where,
                hint=f"give one weight for each of: {expected}",
            )
        values = [w[n] for n in names]
    else:
        values = w
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise MergeError(f"weights are not numbers: {values!r}", where=where) from exc

    if arr.size != len(names):
        raise MergeError(
            f"expected {len(names)} weights, got {arr.size}",
            where=where,
            hint=f"one weight per domain, in order: {expected}",
        )
    if not np.all(np.isfinite(arr)):
        bad = [n for n, x in zip(names, arr) if not np.isfinite(x)]
        raise MergeError(f"weights are NaN or infinite for {', '.join(bad)}", where=where)
    if np.any(arr < -NEGATIVE_TOLERANCE):
        bad = [f"{n}={x:g}" for n, x in zip(names, arr) if x < -NEGATIVE_TOLERANCE]
        raise MergeError(
            f"weights must be non-negative, got {', '.join(bad)}",
            where=where,
            hint="a mixture gives each domain a probability in [0, 1]",
        )
    arr = np.clip(arr, 0.0, None)
    total = float(arr.sum())
    if normalize:
        if total <= 0.0:
            raise MergeError("weights are all zero and cannot be normalised", where=where)
    elif abs(total - 1.0) > SUM_TOLERANCE:
        raise MergeError(
            f"weights sum to {total:.9g}, not 1 (tolerance {SUM_TOLERANCE:g})",
            where=where,
            hint=f"rescale them, or pass {normalize_flag} to have them rescaled"
            if normalize_flag else "rescale them so they sum to 1",
        )
    return arr / total
