"""A search's predicted optimum: a Scheffé quadratic mixture model fitted on its evaluated trials.

Mixture experiments model a response on the simplex with Scheffé's canonical
polynomials, which have no intercept because Σ wᵢ = 1. The quadratic one,

    ŷ(w) = Σᵢ βᵢ wᵢ + Σᵢ<ⱼ βᵢⱼ wᵢ wⱼ,

captures a domain's own effect and each pair's synergy or interference, which
is what a data mixture trades off. It is fitted by least squares (a tiny ridge
keeps it defined when trials cluster) and maximised over a dense set of
mixtures: the 1/20 simplex grid for up to five domains, 20,000 seeded
Dirichlet(1) draws beyond. The argmax is a prediction, never evaluated: `dmo
best` shows it beside the best evaluated trial, marked as such, with the fit's
in-sample R² so a user can judge it. Pure NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import numpy as np

from dmo.search.grid import simplex_grid

MODEL = "scheffe_quadratic"
RIDGE = 1e-6
GRID_DIVISIONS = 20
MAX_GRID_DOMAINS = 5
DRAWS = 20_000
# Fewer trials than terms + this leave the fit without a residual to judge it by.
SPARE_TRIALS = 2


@dataclass(frozen=True)
class Prediction:
    model: str
    weights: dict[str, float]
    value: float  # the predicted objective at ``weights``
    trials: int  # evaluated trials the fit used
    r2: float  # in-sample R² of the fit
    best_evaluated: float  # the best objective a trial reached, for comparison

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def scheffe_terms(weights: np.ndarray) -> np.ndarray:
    """(n, K) mixtures → (n, K + K(K−1)/2): the wᵢ, then every wᵢwⱼ with i < j."""
    pairs = [weights[:, i] * weights[:, j] for i, j in combinations(range(weights.shape[1]), 2)]
    return np.column_stack([weights, *pairs]) if pairs else weights


def predict_optimum(domains: Sequence[str], weights: Sequence[Sequence[float]], values: Sequence[float],
                    *, seed: int = 0) -> Prediction | None:
    """The fitted model's argmax, or None where there are too few finite trials to fit it."""
    w = np.asarray(weights, dtype=np.float64).reshape(len(weights), len(domains))
    y = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(y)
    w, y = w[finite], y[finite]
    x = scheffe_terms(w)
    if len(y) < x.shape[1] + SPARE_TRIALS:
        return None
    coef = np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T @ y)
    residual = float(((x @ coef - y) ** 2).sum())
    spread = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - residual / spread if spread > 0 else float("nan")
    candidates = np.vstack([_candidates(len(domains), seed), w])
    predicted = scheffe_terms(candidates) @ coef
    best = int(np.argmax(predicted))
    return Prediction(MODEL, {d: float(v) for d, v in zip(domains, candidates[best], strict=True)},
                      float(predicted[best]), len(y), r2, float(y.max()))


def _candidates(num_domains: int, seed: int) -> np.ndarray:
    if num_domains <= MAX_GRID_DOMAINS:
        return np.asarray(simplex_grid(num_domains, GRID_DIVISIONS), dtype=np.float64)
    return np.random.default_rng(seed).dirichlet(np.ones(num_domains), size=DRAWS)


__all__ = ["MODEL", "Prediction", "predict_optimum", "scheffe_terms"]
