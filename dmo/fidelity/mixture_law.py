"""A quadratic mixture law of real scores in the weights alone: the no-proxy baseline.

A search's validations train real models on tens of mixtures. Those pairs (weights, real score) are
what the calibration of proxy scores is fitted on, so a calibrated proxy's figure mixes two sources:
what the proxies know and what the trained mixtures know. This fits the second alone, Scheffé's
quadratic mixture polynomial (Scheffé 1958; the "data mixing law" family of Ye et al. 2024 is its
exponential cousin), one per benchmark:

    y(w) = Σ_i β_i w_i + Σ_{i<j} β_ij w_i w_j

No intercept: on the simplex Σ w_i = 1 it would be the sum of the linear terms. ``dmo validate``'s
``calibration_transfer`` and ``bench/calibration_pool.py`` judge it on held-out validations beside the
calibrated proxies (docs/fidelity.md). Pure math on records in memory; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from dmo.fidelity.calibration import held_out_columns, mean_score_row
from dmo.fidelity.ranking import benchmark_mean


def scheffe_features(mixtures: Sequence[Mapping[str, float]], domains: Sequence[str]) -> np.ndarray:
    """Rows ``[w_1 … w_d, w_1 w_2, w_1 w_3 … w_{d-1} w_d]``: d + d(d-1)/2 columns, domains in ``domains`` order
    (a domain a mixture does not name weighs 0)."""
    w = np.asarray([[float(m.get(d, 0.0)) for d in domains] for m in mixtures], dtype=np.float64).reshape(-1, len(domains))
    pairs = [w[:, i] * w[:, j] for i, j in combinations(range(len(domains)), 2)]
    return np.column_stack([w, *pairs]) if pairs else w


def min_mixtures(domains: Sequence[str]) -> int:
    """Fewest mixtures a law is fitted on: two per domain (a full quadratic over 4 domains has 10 coefficients;
    below that the minimum-norm solution says little, and below this it is refused)."""
    return 2 * len(domains)


@dataclass(frozen=True)
class MixtureLaw:
    """One fitted quadratic mixture polynomial per benchmark."""

    domains: tuple[str, ...]
    coefficients: Mapping[str, np.ndarray]

    @classmethod
    def fit(cls, mixtures: Sequence[Mapping[str, float]], real: Mapping[str, Sequence[float]],
            domains: Sequence[str]) -> MixtureLaw:
        """Least squares on ``mixtures`` and each benchmark's real scores. With fewer mixtures than
        coefficients the system is underdetermined and the minimum-norm solution is taken (see
        :func:`min_mixtures`)."""
        if len(mixtures) < min_mixtures(domains):
            raise ValueError(f"a mixture law over {len(domains)} domains needs at least {min_mixtures(domains)} "
                             f"mixtures, got {len(mixtures)}")
        features = scheffe_features(mixtures, domains)
        coefficients = {}
        for benchmark, scores in real.items():
            y = np.asarray(scores, dtype=np.float64)
            if y.shape != (len(mixtures),):
                raise ValueError(f"benchmark {benchmark!r} has {y.size} scores for {len(mixtures)} mixtures")
            coefficients[benchmark] = np.linalg.lstsq(features, y, rcond=None)[0]
        return cls(tuple(domains), coefficients)

    def predict(self, mixtures: Sequence[Mapping[str, float]]) -> dict[str, np.ndarray]:
        features = scheffe_features(mixtures, self.domains)
        return {b: features @ beta for b, beta in self.coefficients.items()}


def judge_mixture_law(fit_from: Sequence[Any], mixtures: Sequence[Mapping[str, float]],
                      real: Mapping[str, Sequence[float]], *, domains: Sequence[str],
                      weights: Mapping[str, float] | None = None) -> dict[str, Any] | None:
    """The mixture law fitted on the held-out real scores of the validations ``fit_from`` (records with
    ``results``; each mixture once, at the mean of its runs), judged on ``mixtures`` and their ``real``
    scores per benchmark: mean-score ρ with its 90 % interval, τ, regret. The caller leaves out any mixture
    the validations trained. None where the validations hold too few mixtures to fit it."""
    fit_mixtures, _, fit_real = held_out_columns([result for validation in fit_from for result in validation.results])
    if len(fit_mixtures) < min_mixtures(domains):
        return None
    names = [b for b in real if b in fit_real]
    law = MixtureLaw.fit(fit_mixtures, {b: fit_real[b] for b in names}, domains)
    predicted = law.predict(mixtures)
    row = mean_score_row(benchmark_mean(predicted, names, weights), benchmark_mean({b: real[b] for b in names}, names,
                                                                                   weights), interval=True)
    return {**row, "fitted_on": len(fit_mixtures)}
