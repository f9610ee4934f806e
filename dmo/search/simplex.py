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

from collections.abc import Sequence

import numpy as np

from dmo.mixture import check_weights


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
    # The one weight validator (finite, non-negative, not all zero), then onto the simplex.
    flat = np.asarray(w, dtype=np.float64).reshape(-1)
    w_arr = np.asarray(check_weights(flat.tolist(), [f"w{i}" for i in range(flat.size)], normalize=True))
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
