"""A quadratic mixture law of real scores in the weights alone: the no-proxy ranking.

A search's validations train real models on tens of mixtures. Those pairs (weights, real score) are
what the calibration of proxy scores is fitted on, so a calibrated proxy's figure mixes two sources:
what the proxies know and what the trained mixtures know. This fits the second alone, Scheffé's
quadratic mixture polynomial (Scheffé 1958; the "data mixing law" family of Ye et al. 2024 is its
exponential cousin), one per benchmark:

    y(w) = Σ_i β_i w_i + Σ_{i<j} β_ij w_i w_j

No intercept: on the simplex Σ w_i = 1 it would be the sum of the linear terms. The blending term
``w_i w_j`` can be swapped for Becker's (1968) homogeneous ones, same coefficients, which bend harder near
the simplex's edges (:data:`BLENDING_TERMS`); ``form="select"`` picks one per benchmark by its
leave-one-out error on the mixtures fitted on (docs/fidelity.md judges that on held-out draws), and ``link="logit"``
fits each benchmark's log-odds instead of its points, bounded at 0 and 100 (judged the same way). ``dmo validate``'s
``calibration_transfer`` and ``bench/calibration_pool.py`` judge it on held-out validations beside the
calibrated proxies; ``dmo best --calibrated`` ranks by it, since on draws it was not tuned on it ranked
better than they did (docs/fidelity.md). Pure math on records in memory; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from dmo.fidelity.calibration import PooledCalibration, held_out_columns, mixture_key
from dmo.fidelity.ranking import benchmark_mean, mean_score_row


def _becker_h2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    total = a + b
    return np.divide(a * b, total, out=np.zeros_like(total), where=total > 0)  # 0 where both weigh 0


# How two domains blend beyond their linear terms (Cornell, *Experiments with Mixtures*, ch. 6). All are 0
# where either weight is 0, so every form keeps the linear terms' meaning: the score at each vertex.
BLENDING_TERMS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "quadratic": lambda a, b: a * b,                # Scheffé: a parabola along each edge
    "becker_h1": np.minimum,                        # a kink at equal shares
    "becker_h2": _becker_h2,                        # w_i w_j / (w_i + w_j)
    "becker_h3": lambda a, b: np.sqrt(a * b),       # steep near the edges: a small share already counts
}
SELECT = "select"

# A score of exactly 0 or 100 has infinite log-odds, so shares are floored this far from either bound:
# 0.01 points, below one item of any split up to 10,000 items, so that a saturated benchmark (the demo's
# counting spans 99.6–100 points, one item of 3,200 being 0.03) keeps its ranking instead of clipping flat.
LOGIT_FLOOR = 1e-4


def _logit(points: np.ndarray) -> np.ndarray:
    share = np.clip(np.asarray(points, dtype=np.float64) / 100.0, LOGIT_FLOOR, 1.0 - LOGIT_FLOOR)
    return np.log(share / (1.0 - share))


def _points(log_odds: np.ndarray) -> np.ndarray:
    return 100.0 * np.exp(-np.logaddexp(0.0, -log_odds))  # 100·sigmoid, without overflow far out


# The scale a benchmark's points are fitted on (every scorer gives 0–100 points). On "logit" the
# polynomial is fitted to the log-odds of the score and mapped back, so a benchmark that saturates at 100
# (or sits near 0) is a bounded S-curve in the weights rather than a parabola that overshoots its bounds.
LINKS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "identity": (lambda y: np.asarray(y, dtype=np.float64), lambda z: z),
    "logit": (_logit, _points),
}


def scheffe_features(mixtures: Sequence[Mapping[str, float]], domains: Sequence[str],
                     term: str = "quadratic") -> np.ndarray:
    """Rows ``[w_1 … w_d, h(w_1, w_2), h(w_1, w_3) … h(w_{d-1}, w_d)]`` for the blending term ``h`` named by
    ``term`` (:data:`BLENDING_TERMS`): d + d(d-1)/2 columns, domains in ``domains`` order (a domain a mixture
    does not name weighs 0; one not in ``domains`` is an error, not a dropped weight)."""
    for mixture in mixtures:
        unknown = sorted(set(mixture) - set(domains))
        if unknown:
            raise ValueError(f"mixture weighs domain(s) {', '.join(unknown)} outside the law's {', '.join(domains)}")
    blend = BLENDING_TERMS[term]
    w = np.asarray([[float(m.get(d, 0.0)) for d in domains] for m in mixtures], dtype=np.float64).reshape(-1, len(domains))
    pairs = [blend(w[:, i], w[:, j]) for i, j in combinations(range(len(domains)), 2)]
    return np.column_stack([w, *pairs]) if pairs else w


def loo_squared_error(features: np.ndarray, y: np.ndarray) -> float:
    """Mean squared leave-one-out error of least squares (PRESS / n), in closed form: residual_i / (1 − h_ii).
    Infinite where a point has leverage 1 (its fit would rest on it alone)."""
    fitted = features @ np.linalg.lstsq(features, y, rcond=None)[0]
    leverage = np.einsum("ij,ji->i", features, np.linalg.pinv(features))
    if np.any(leverage > 1 - 1e-9):
        return float("inf")
    return float(np.mean(((y - fitted) / (1 - leverage)) ** 2))


def _check_link(link: str) -> None:
    if link not in LINKS:
        raise ValueError(f"unknown law link {link!r}; one of {', '.join(LINKS)}")


def min_mixtures(domains: Sequence[str]) -> int:
    """Fewest mixtures a law is fitted on: one per coefficient, d + d(d-1)/2 (10 over 4 domains), so the
    least-squares fit is never underdetermined."""
    d = len(domains)
    return d + d * (d - 1) // 2


@dataclass(frozen=True)
class MixtureLaw:
    """One fitted mixture polynomial per benchmark, on points or on their log-odds (``link``)."""

    domains: tuple[str, ...]
    coefficients: Mapping[str, np.ndarray]
    terms: Mapping[str, str] | None = None  # blending term per benchmark; None: all quadratic
    link: str = "identity"  # the scale the coefficients live on (:data:`LINKS`); predictions are points

    def __post_init__(self) -> None:
        _check_link(self.link)

    @classmethod
    def fit(cls, mixtures: Sequence[Mapping[str, float]], real: Mapping[str, Sequence[float]],
            domains: Sequence[str], form: str = "quadratic", link: str = "identity") -> MixtureLaw:
        """Least squares on ``mixtures`` and each benchmark's real scores on the scale ``link``
        (:data:`LINKS`), with the blending term ``form`` (:data:`BLENDING_TERMS`) or, with ``"select"``,
        per benchmark the term of least leave-one-out error on that scale (ties to the first in
        :data:`BLENDING_TERMS`, the quadratic). Fewer mixtures than :func:`min_mixtures` is an error."""
        if form != SELECT and form not in BLENDING_TERMS:
            raise ValueError(f"unknown law form {form!r}; one of {', '.join([*BLENDING_TERMS, SELECT])}")
        _check_link(link)  # before any fitting
        if len(mixtures) < min_mixtures(domains):
            raise ValueError(f"a mixture law over {len(domains)} domains needs at least {min_mixtures(domains)} "
                             f"mixtures, got {len(mixtures)}")
        candidates = list(BLENDING_TERMS) if form == SELECT else [form]
        features = {term: scheffe_features(mixtures, domains, term) for term in candidates}
        coefficients, terms = {}, {}
        for benchmark, scores in real.items():
            y = np.asarray(scores, dtype=np.float64)
            if y.shape != (len(mixtures),):
                raise ValueError(f"benchmark {benchmark!r} has {y.size} scores for {len(mixtures)} mixtures")
            y = LINKS[link][0](y)
            term = min(candidates, key=lambda t: loo_squared_error(features[t], y)) if len(candidates) > 1 else form
            coefficients[benchmark] = np.linalg.lstsq(features[term], y, rcond=None)[0]
            terms[benchmark] = term
        return cls(tuple(domains), coefficients, terms, link)

    def term(self, benchmark: str) -> str:
        return (self.terms or {}).get(benchmark, "quadratic")

    def predict(self, mixtures: Sequence[Mapping[str, float]]) -> dict[str, np.ndarray]:
        features = {term: scheffe_features(mixtures, self.domains, term) for term in {self.term(b) for b in self.coefficients}}
        to_points = LINKS[self.link][1]
        return {b: to_points(features[self.term(b)] @ beta) for b, beta in self.coefficients.items()}


def law_on_validations(fit_from: Sequence[Any], names: Sequence[str], domains: Sequence[str], *,
                       judged: Sequence[Mapping[str, float]] = (),
                       form: str = "quadratic", link: str = "identity") -> tuple[MixtureLaw, int] | None:
    """The law fitted on the held-out real scores of the validations ``fit_from`` (records with ``results``;
    each mixture once, at the mean of its runs) for ``names`` (those the validations scored), and how many
    mixtures it was fitted on; None where they are too few. A mixture in ``judged`` (what the law is about to
    be judged on) that was fitted on is an error."""
    fit_mixtures, _, fit_real = held_out_columns([result for validation in fit_from for result in validation.results])
    if len(fit_mixtures) < min_mixtures(domains):
        return None
    seen = {mixture_key(w) for w in fit_mixtures} & {mixture_key(w) for w in judged}
    if seen:
        raise ValueError(f"{len(seen)} of the mixtures to judge on were fitted on; leave them out")
    names = [b for b in names if b in fit_real]
    if not names:
        raise ValueError("no benchmark is both scored here and in the validations the law is fitted on")
    return MixtureLaw.fit(fit_mixtures, {b: fit_real[b] for b in names}, domains, form, link), len(fit_mixtures)


def judge_mixture_law(fit_from: Sequence[Any], mixtures: Sequence[Mapping[str, float]],
                      real: Mapping[str, Sequence[float]], *, domains: Sequence[str],
                      weights: Mapping[str, float] | None = None, form: str = "quadratic",
                      link: str = "identity") -> dict[str, Any] | None:
    """The mixture law fitted on the held-out real scores of the validations ``fit_from`` (records with
    ``results``; each mixture once, at the mean of its runs), judged on ``mixtures`` and their ``real``
    scores per benchmark: mean-score ρ with its 90 % interval, τ, regret, and the benchmarks it covers.
    None where the validations hold too few mixtures to fit it; judging on a mixture the law was fitted
    on, or with no benchmark in common, is an error."""
    fitted = law_on_validations(fit_from, list(real), domains, judged=mixtures, form=form, link=link)
    if fitted is None:
        return None
    law, fitted_on = fitted
    names = list(law.coefficients)
    row = mean_score_row(law_means(law, mixtures, weights), benchmark_mean({b: real[b] for b in names}, names, weights),
                         interval=True)
    return {**row, "fitted_on": fitted_on, "benchmarks": names}


def law_means(law: MixtureLaw, mixtures: Sequence[Mapping[str, float]],
              weights: Mapping[str, float] | None = None) -> np.ndarray:
    """The law's predicted mean score at ``mixtures`` (over its benchmarks, weighted as the search's
    objective): what ``dmo best --calibrated`` ranks by and what the judges below score."""
    return benchmark_mean(law.predict(mixtures), list(law.coefficients), weights)


def judge_blend(pooled: PooledCalibration, fit_from: Sequence[Any], mixtures: Sequence[Mapping[str, float]],
                proxy: Mapping[str, Sequence[float]], real: Mapping[str, Sequence[float]], *,
                domains: Sequence[str], weights: Mapping[str, float] | None = None) -> dict[str, Any] | None:
    """The blend: each mixture's real mean predicted as the mean of the calibrated proxies' prediction
    (``pooled``) and the mixture law's, both fitted on ``fit_from``'s held-out pairs, judged on
    ``mixtures`` (ρ with its 90 % interval, τ, regret of its argmax). The two err differently: the law
    knows only the weights, the calibrated proxy only what the merged model shows. None where the law
    has too few pairs."""
    names = [b for b in real if b in proxy and b in pooled.calibration.knots]
    fitted = law_on_validations(fit_from, names, domains, judged=mixtures)
    if fitted is None:
        return None
    law = fitted[0]
    names = list(law.coefficients)
    calibrated = benchmark_mean(pooled.calibration.apply({b: proxy[b] for b in names}), names, weights)
    blend = (calibrated + law_means(law, mixtures, weights)) / 2
    row = mean_score_row(blend, benchmark_mean({b: real[b] for b in names}, names, weights), interval=True)
    return {**row, "benchmarks": names}
