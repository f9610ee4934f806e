"""Per-benchmark monotone calibration of proxy scores, fitted on a few trained mixtures.

A proxy can rank mixtures right on every benchmark and still rank them wrong
on the mean: where the real model saturates a benchmark (counting solved at
w = 0.25) while the merged proxy climbs slowly, the mean over benchmarks
weighs counting too little. A monotone map per benchmark, fitted on a handful
of mixtures that were trained for real, puts proxy scores on the real scale
without changing any per-benchmark order.

The fit is isotonic regression (pool adjacent violators) of real on proxy
scores, applied by linear interpolation between the fitted points and held
flat beyond them; ``method="centred"`` is centred isotonic regression, the
same pooled blocks with one knot each, so the map rises between blocks
instead of stepping (bench/calibration_pool.py measures both; not adopted,
docs/fidelity.md). :func:`judge` fits on ``fit`` mixtures and scores on the
others only, so a calibration is never judged on the pairs it saw;
:func:`judge_fitted` judges one fitted on earlier validations (what
``dmo best --calibrated`` applies: every finished validation of the search,
pooled) on another validation's draws.

Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dmo.fidelity.ranking import benchmark_mean, mean_score_row

MAX_FIT = 5  # a calibration worth having costs at most this many trained mixtures


@dataclass
class _Block:
    """Adjacent unique proxy scores pooled into one fitted value (their points' mean real score)."""

    sum_y: float
    count: int  # points
    width: int  # unique proxy scores
    sum_x: float

    @property
    def mean_y(self) -> float:
        return self.sum_y / self.count

    def absorb(self, other: _Block) -> None:
        self.sum_y += other.sum_y
        self.count += other.count
        self.width += other.width
        self.sum_x += other.sum_x


def _pooled_blocks(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, list[_Block]]:
    """Pool adjacent violators over the unique x: the unique x ascending, and the blocks, strictly
    increasing in mean y. Neighbours with equal means are pooled too: that leaves the isotonic fit's
    values as they are and gives the centred fit one knot, not two at one height (a flat stretch)."""
    unique_x, inverse = np.unique(np.asarray(x, dtype=np.float64), return_inverse=True)
    sums = np.bincount(inverse, weights=np.asarray(y, dtype=np.float64))
    counts = np.bincount(inverse)
    blocks: list[_Block] = []
    for value, total, count in zip(unique_x, sums, counts):
        blocks.append(_Block(float(total), int(count), 1, float(value * count)))
        while len(blocks) > 1 and blocks[-2].mean_y >= blocks[-1].mean_y:
            merged = blocks.pop()
            blocks[-1].absorb(merged)
    return unique_x, blocks


def isotonic_fit(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Knots (xs ascending, ys non-decreasing) of the least-squares monotone fit of y on x."""
    unique_x, blocks = _pooled_blocks(x, y)
    return unique_x, np.repeat([b.mean_y for b in blocks], [b.width for b in blocks])


def centred_isotonic_fit(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Knots of centred isotonic regression (Oron & Flournoy 2017): each pooled block of the
    isotonic fit becomes one knot at its points' mean x, the ends of the data kept, so the map
    rises strictly between blocks instead of stepping. A step maps every proxy score inside a
    block to one value, and a top pick among mixtures tied there is left to the other benchmarks."""
    unique_x, blocks = _pooled_blocks(x, y)
    xs = [b.sum_x / b.count for b in blocks]
    ys = [b.mean_y for b in blocks]
    if xs[0] > unique_x[0]:
        xs.insert(0, float(unique_x[0]))
        ys.insert(0, ys[0])
    if xs[-1] < unique_x[-1]:
        xs.append(float(unique_x[-1]))
        ys.append(ys[-1])
    return np.asarray(xs), np.asarray(ys)


CALIBRATION_FITS = {"isotonic": isotonic_fit, "centred": centred_isotonic_fit}


def calibration_fit(method: str):
    """The fit registered as ``method``; an unknown name is an error that lists the known ones."""
    try:
        return CALIBRATION_FITS[method]
    except KeyError:
        raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(CALIBRATION_FITS)}") from None


@dataclass(frozen=True)
class Calibration:
    """One monotone map per benchmark."""

    knots: Mapping[str, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def fit(cls, proxy: Mapping[str, Sequence[float]], real: Mapping[str, Sequence[float]], *,
            method: str = "isotonic") -> Calibration:
        fit = calibration_fit(method)
        return cls({b: fit(proxy[b], real[b]) for b in proxy if b in real})

    def apply(self, proxy: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
        out = {}
        for b, scores in proxy.items():
            xs, ys = self.knots[b]
            out[b] = np.interp(np.asarray(scores, dtype=np.float64), xs, ys)
        return out


def judge(proxy: Mapping[str, Sequence[float]], real: Mapping[str, Sequence[float]], *, fit: Sequence[int],
          weights: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Mean-score fidelity on the mixtures not in ``fit``, raw and calibrated on ``fit``."""
    names = [b for b in proxy if b in real]
    n = len(next(iter(proxy.values())))
    fit_set = sorted(set(fit))
    if not fit_set or len(fit_set) > MAX_FIT or fit_set[-1] >= n or fit_set[0] < 0:
        raise ValueError(f"fit on 1..{MAX_FIT} of the {n} mixtures, got {list(fit)}")
    held = [i for i in range(n) if i not in fit_set]
    if len(held) < 2:
        raise ValueError("fewer than two mixtures left to judge the calibration on")
    calibration = Calibration.fit({b: [proxy[b][i] for i in fit_set] for b in names},
                                  {b: [real[b][i] for i in fit_set] for b in names})
    held_proxy = {b: [proxy[b][i] for i in held] for b in names}
    calibrated = calibration.apply(held_proxy)
    real_mean = benchmark_mean({b: [real[b][i] for i in held] for b in names}, names, weights)

    def row(scores: Mapping[str, Sequence[float]]) -> dict[str, float]:
        return mean_score_row(benchmark_mean(scores, names, weights), real_mean)

    return {"fit_on": fit_set, "judged_on": held, "raw": row(held_proxy), "calibrated": row(calibrated)}


def band_order(calibrated_mean: Sequence[float], raw_mean: Sequence[float], band: float) -> list[int]:
    """The calibrated ranking with its top decided by the raw proxy: the mixtures whose calibrated mean is
    within ``band`` of the highest first, by raw proxy mean, then the others by calibrated mean (the first
    on ties, both times). A calibrated mean is a prediction with an error of about ``band``
    (:meth:`PooledCalibration.band`); inside it the map cannot tell mixtures apart (it flattens each
    benchmark to steps), while the raw proxy still orders them. ``band`` 0 reorders only exact ties at the
    top; an empty input is an empty order."""
    calibrated = np.asarray(calibrated_mean, dtype=np.float64)
    raw = np.asarray(raw_mean, dtype=np.float64)
    if calibrated.shape != raw.shape:
        raise ValueError(f"band order needs paired means, got {calibrated.size} and {raw.size}")
    if not (np.all(np.isfinite(calibrated)) and np.all(np.isfinite(raw))):
        raise ValueError("band order needs finite means; a trial scored nan cannot be ranked")
    if not band >= 0:
        raise ValueError(f"the band must be a non-negative width, got {band}")
    if calibrated.size == 0:
        return []
    inside = calibrated >= calibrated.max() - band
    return sorted(range(calibrated.size), key=lambda i: (not inside[i], -(raw[i] if inside[i] else calibrated[i]), i))


def band_pick(calibrated_mean: Sequence[float], raw_mean: Sequence[float], band: float) -> int:
    """The tie-aware pick: the first of :func:`band_order`, the raw proxy's best among the mixtures within
    ``band`` of the calibrated top."""
    order = band_order(calibrated_mean, raw_mean, band)
    if not order:
        raise ValueError("no mixtures to pick from")
    return order[0]


def judge_fitted(calibration: Calibration, proxy: Mapping[str, Sequence[float]], real: Mapping[str, Sequence[float]],
                 *, weights: Mapping[str, float] | None = None, pooled: PooledCalibration | None = None,
                 ) -> dict[str, Any]:
    """Mean-score fidelity, raw and calibrated, of a calibration fitted elsewhere, on mixtures it never
    saw (the caller leaves out any it was fitted on), with a 90 % bootstrap interval on ρ. With ``pooled``
    (what ``calibration`` was fitted as), the calibrated row also holds ``band`` (its error on the judged
    benchmarks, :meth:`PooledCalibration.band`) and ``band_regret``: the real score :func:`band_pick`'s
    mixture loses."""
    names = [b for b in proxy if b in real and b in calibration.knots]
    if not names:
        raise ValueError("no benchmark is both scored here and calibrated")
    real_mean = benchmark_mean({b: real[b] for b in names}, names, weights)
    own = {b: proxy[b] for b in names}

    def row(scores: Mapping[str, Sequence[float]]) -> dict[str, Any]:
        return mean_score_row(benchmark_mean(scores, names, weights), real_mean, interval=True)

    calibrated = calibration.apply(own)
    judged = {"benchmarks": names, "raw": row(own), "calibrated": row(calibrated)}
    if pooled is not None:
        band = pooled.band(weights, names)
        pick = band_pick(benchmark_mean(calibrated, names, weights), benchmark_mean(own, names, weights), band)
        judged["calibrated"].update(band=band, band_regret=float(real_mean.max() - real_mean[pick]))
    return judged


def calibrated_means(trials: Sequence[Mapping[str, float]], calibration: Calibration,
                     weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Each trial's mean over the calibrated benchmarks of its per-benchmark proxy scores, each mapped
    to the real scale: the objective a search would have maximised had it known the real scales.
    A trial missing a calibrated benchmark's score is an error (it was scored on other benchmarks)."""
    names = sorted(calibration.knots)
    missing = [b for b in names for scores in trials if scores.get(b) is None]
    if missing:
        raise ValueError(f"a trial has no score on calibrated benchmark {missing[0]!r}")
    proxy = {b: [float(scores[b]) for scores in trials] for b in names}
    return benchmark_mean(calibration.apply(proxy), names, weights)


def mixture_key(weights: Mapping[str, float]) -> tuple:
    """One mixture however its weights are ordered: what fitting groups runs by and judging leaves out."""
    return tuple(sorted(weights.items()))


def held_out_columns(results: Sequence[Any]) -> tuple[list[dict[str, float]], dict[str, list[float]],
                                                     dict[str, list[float]]]:
    """The held-out mixtures of one or more validations' records (``weights``, ``group``,
    ``proxy_scores``, ``real_scores``) as (their weights, proxy columns, real columns) per benchmark
    scored on every one of them; a mixture trained twice, or drawn by two validations, counts once, at
    the mean of its runs, and the search's own picks are left out."""
    pairs: dict[tuple, tuple[Mapping[str, float], Mapping[str, float], list[Mapping[str, float]]]] = {}
    for result in results:
        if result.group == "pick":
            continue
        key = mixture_key(result.weights)
        pairs.setdefault(key, (result.weights, result.proxy_scores, []))[2].append(result.real_scores)
    if not pairs:
        raise ValueError("no held-out mixtures to fit on")
    # Pooled validations may disagree on which benchmarks they scored; a column needs every pair.
    names = [b for b, v in next(iter(pairs.values()))[1].items() if v is not None and all(
        proxy.get(b) is not None and all(run.get(b) is not None for run in runs) for _, proxy, runs in pairs.values())]
    proxy = {b: [float(p[b]) for _, p, _ in pairs.values()] for b in names}
    real = {b: [float(np.mean([run[b] for run in runs])) for _, _, runs in pairs.values()] for b in names}
    return [dict(w) for w, _, _ in pairs.values()], proxy, real


@dataclass(frozen=True)
class PooledCalibration:
    """A calibration fitted on one or more validations, and what it saw: judging must leave those out."""

    calibration: Calibration
    mixtures: frozenset[tuple]  # each fitted mixture as :func:`mixture_key`
    validation_ids: tuple[int, ...]
    proxy: Mapping[str, Sequence[float]]  # the fitted pairs, per benchmark: what :meth:`band` measures on
    real: Mapping[str, Sequence[float]]

    def band(self, weights: Mapping[str, float] | None = None, names: Sequence[str] | None = None) -> float:
        """The map's own error on the mean score (over ``names``, default every calibrated benchmark):
        root-mean-square of calibrated − real mean over the pairs it was fitted on (in-sample, so known when
        a pick is made). :func:`band_order`'s width."""
        names = sorted(self.calibration.knots) if names is None else list(names)
        error = (benchmark_mean(self.calibration.apply({b: self.proxy[b] for b in names}), names, weights)
                 - benchmark_mean(self.real, names, weights))
        return float(np.sqrt(np.mean(error ** 2)))


def fit_on_validations(validations: Sequence[Any], *, method: str = "isotonic") -> PooledCalibration:
    """The calibration ``dmo best --calibrated`` applies: fitted on the held-out mixtures of every one
    of ``validations`` (records with ``id`` and ``results``) pooled, each mixture once at the mean of its
    runs (:func:`held_out_columns`). One validation holds 10–20 held-out pairs, which leave an isotonic
    map coarse and its ends set by a few mixtures; every trained mixture of a search is a pair worth
    fitting on (bench/calibration_pool.py measures the difference on held-out draws, docs/fidelity.md).
    Raises ValueError where they hold no held-out mixture."""
    mixtures, proxy, real = held_out_columns([result for validation in validations for result in validation.results])
    return PooledCalibration(Calibration.fit(proxy, real, method=method), frozenset(mixture_key(w) for w in mixtures),
                             tuple(validation.id for validation in validations), proxy, real)
