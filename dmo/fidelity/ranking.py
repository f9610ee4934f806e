"""How well proxies rank mixtures like the mixture-trained models they stand in for.

Inputs are paired score lists: ``proxy[i]`` and ``real[i]`` score the same
mixture i. A search only needs the proxy to order mixtures correctly, so the
measures are rank correlations (Spearman ρ, Kendall τ-b) and the cost of
trusting the proxy's pick (top-1 regret, in score points).

Pure numpy; the tests compare against scipy.stats on fixed data with ties.
A correlation of constant scores is undefined: it comes back as nan, and
:func:`fidelity_summary` says why in its notes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

TOP_K = (1, 3)
_METRICS = ("spearman", "kendall", "regret") + tuple(f"in_top_{k}" for k in TOP_K)


def _paired(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x_arr = np.asarray(x, dtype=np.float64).reshape(-1)
    y_arr = np.asarray(y, dtype=np.float64).reshape(-1)
    if x_arr.shape != y_arr.shape:
        raise ValueError(f"paired scores differ in length: {x_arr.size} vs {y_arr.size}")
    if not (np.all(np.isfinite(x_arr)) and np.all(np.isfinite(y_arr))):
        raise ValueError("scores must be finite; drop failed mixtures before comparing")
    return x_arr, y_arr


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks (scipy's 'average')."""
    x_arr = np.asarray(x, dtype=np.float64).reshape(-1)
    order = np.argsort(x_arr, kind="mergesort")
    sorted_x = x_arr[order]
    # Start a new group wherever the sorted value changes.
    group_starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    group_ends = np.r_[group_starts[1:], x_arr.size]  # exclusive
    group_rank = (group_starts + 1 + group_ends) / 2.0  # mean of ranks start+1 .. end
    group_of_sorted = np.repeat(np.arange(group_starts.size), group_ends - group_starts)
    ranks = np.empty(x_arr.size, dtype=np.float64)
    ranks[order] = group_rank[group_of_sorted]
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman ρ: Pearson correlation of average ranks; nan if either side is constant."""
    x_arr, y_arr = _paired(x, y)
    if x_arr.size < 2:
        return float("nan")
    rx = average_ranks(x_arr) - (x_arr.size + 1) / 2.0
    ry = average_ranks(y_arr) - (y_arr.size + 1) / 2.0
    denominator = np.sqrt(np.dot(rx, rx) * np.dot(ry, ry))
    if denominator == 0.0:
        return float("nan")
    return float(np.clip(np.dot(rx, ry) / denominator, -1.0, 1.0))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall τ-b (ties corrected, as scipy's default); nan if either side is constant.

    τ_b = Σ_{i<j} sgn(x_i−x_j)·sgn(y_i−y_j) / √(pairs untied in x · pairs untied in y).
    O(n²) memory, fine for the hundreds of mixtures a search scores.
    """
    x_arr, y_arr = _paired(x, y)
    if x_arr.size < 2:
        return float("nan")
    sx = np.sign(x_arr[:, None] - x_arr[None, :])  # (n, n)
    sy = np.sign(y_arr[:, None] - y_arr[None, :])
    # Every unordered pair appears twice in the full matrices; the factor cancels.
    untied_x = np.abs(sx).sum()
    untied_y = np.abs(sy).sum()
    if untied_x == 0 or untied_y == 0:
        return float("nan")
    return float(np.clip((sx * sy).sum() / np.sqrt(untied_x * untied_y), -1.0, 1.0))


def _pick(proxy: np.ndarray) -> int:
    """The mixture a search would choose: the proxy's best, the first one on ties."""
    return int(np.argmax(proxy))


def top1_regret(proxy: Sequence[float], real: Sequence[float]) -> float:
    """Real score lost by taking the proxy's best mixture: max(real) − real[argmax(proxy)]."""
    proxy_arr, real_arr = _paired(proxy, real)
    if proxy_arr.size == 0:
        raise ValueError("no mixtures to compare")
    return float(real_arr.max() - real_arr[_pick(proxy_arr)])


def pick_in_top_k(proxy: Sequence[float], real: Sequence[float], k: int) -> bool:
    """Whether the proxy's pick is among the k best real mixtures (ties with the k-th count in)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    proxy_arr, real_arr = _paired(proxy, real)
    if proxy_arr.size == 0:
        raise ValueError("no mixtures to compare")
    kth_best = np.sort(real_arr)[::-1][min(k, real_arr.size) - 1]
    return bool(real_arr[_pick(proxy_arr)] >= kth_best)


def rank_interval(
    x: Sequence[float], y: Sequence[float], *, measure: Callable[[np.ndarray, np.ndarray], float] | None = None,
    level: float = 0.9, draws: int = 2000, seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a rank correlation (Spearman ρ by default) over paired mixtures.

    With a few dozen mixtures one ρ says little on its own: this is how far it
    moves when other mixtures of the same kind had been drawn. Resamples whose
    scores are all tied (undefined) are dropped; nan, nan if all are.
    """
    x_arr, y_arr = _paired(x, y)
    measure = measure or spearman
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, x_arr.size, size=(draws, x_arr.size))
    values = np.array([measure(x_arr[p], y_arr[p]) for p in picks])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def spearman_interval(x: Sequence[float], y: Sequence[float], **options: Any) -> tuple[float, float]:
    return rank_interval(x, y, measure=spearman, **options)


def kendall_interval(x: Sequence[float], y: Sequence[float], **options: Any) -> tuple[float, float]:
    return rank_interval(x, y, measure=kendall_tau, **options)


def _metrics(proxy: Sequence[float], real: Sequence[float]) -> dict[str, float | bool | int]:
    row: dict[str, float | bool | int] = {
        "n": len(proxy),
        "spearman": spearman(proxy, real),
        "kendall": kendall_tau(proxy, real),
        "regret": top1_regret(proxy, real),
    }
    for k in TOP_K:
        row[f"in_top_{k}"] = pick_in_top_k(proxy, real, k)
    return row


def _notes_for(name: str, proxy: np.ndarray, real: np.ndarray) -> list[str]:
    notes = []
    if proxy.size < 2:
        notes.append(f"{name}: fewer than two mixtures, correlations are undefined (nan)")
        return notes
    for side, values in (("proxy", proxy), ("real", real)):
        if np.all(values == values[0]):
            notes.append(f"{name}: all {side} scores are equal, correlations are undefined (nan)")
    return notes


def benchmark_mean(scores: Mapping[str, Sequence[float]], names: Sequence[str],
                   weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Each mixture's mean over ``names`` — weighted as the search's objective weights them, if it does."""
    stacked = np.asarray([np.asarray(scores[b], dtype=np.float64) for b in names])  # (benchmarks, mixtures)
    if weights is None:
        return stacked.mean(axis=0)
    omega = np.asarray([float(weights.get(b, 0.0)) for b in names])
    if not omega.sum() > 0:
        raise ValueError(f"the weights give none of {list(names)} a positive weight")
    return omega @ stacked / omega.sum()


def fidelity_summary(
    proxy_scores: Mapping[str, Sequence[float]], real_scores: Mapping[str, Sequence[float]],
    weights: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Rank fidelity per benchmark, of the mean score, and averaged over benchmarks.

    ``proxy_scores[b][i]`` and ``real_scores[b][i]`` score mixture i on
    benchmark b. Returns::

        {"per_benchmark": {b: row}, "mean_score": row, "average": row, "notes": [...]}

    where a row holds n, spearman, kendall, regret, in_top_1 and in_top_3.
    ``mean_score`` ranks mixtures by their score averaged over benchmarks (what
    the objective maximises: weighted by ``weights`` when it weights them); ``average`` averages each metric over
    benchmarks (nan correlations left out, in_top_k as a fraction). Benchmarks
    scored on one side only are left out and listed in the notes.
    """
    shared = [b for b in proxy_scores if b in real_scores]
    sides = (("proxies", proxy_scores, real_scores), ("real models", real_scores, proxy_scores))
    notes = [
        f"{b}: scored for {side} only, left out"
        for side, own, other in sides
        for b in own
        if b not in other
    ]
    if not shared:
        raise ValueError("proxy and real scores share no benchmark")

    per_benchmark: dict[str, dict[str, float | bool | int]] = {}
    for b in shared:
        proxy, real = _paired(proxy_scores[b], real_scores[b])
        per_benchmark[b] = _metrics(proxy, real)
        notes.extend(_notes_for(b, proxy, real))

    lengths = {per_benchmark[b]["n"] for b in shared}
    if len(lengths) != 1:
        raise ValueError(f"benchmarks score different numbers of mixtures: {sorted(lengths)}")
    proxy_mean = benchmark_mean(proxy_scores, shared, weights)
    real_mean = benchmark_mean(real_scores, shared, weights)
    mean_row: dict[str, Any] = _metrics(proxy_mean, real_mean)
    mean_row["spearman_90"] = list(spearman_interval(proxy_mean, real_mean))
    mean_row["kendall_90"] = list(kendall_interval(proxy_mean, real_mean))
    notes.extend(_notes_for("mean score", proxy_mean, real_mean))

    average: dict[str, float | bool | int] = {"n": int(lengths.pop())}
    for metric in _METRICS:
        column = np.asarray([float(per_benchmark[b][metric]) for b in shared])
        finite = column[np.isfinite(column)]
        average[metric] = float(finite.mean()) if finite.size else float("nan")

    return {
        "per_benchmark": per_benchmark,
        "mean_score": mean_row,
        "average": average,
        "notes": notes,
    }


def retest_agreement(first: Mapping[str, Sequence[float]], second: Mapping[str, Sequence[float]],
                     weights: Mapping[str, float] | None = None) -> dict[str, Any]:
    """How well the real ranking agrees with itself: the same mixtures trained twice on two seeds.

    ``first[b][i]`` and ``second[b][i]`` score mixture i's two models on benchmark b. The
    mean-score ρ between the runs is the test–retest reliability of the real ranking; no proxy
    can be expected to correlate with one run better than about √ρ (the ceiling, classical test
    theory: a perfect proxy correlates with a noisy measure at the square root of its reliability).
    ``regret`` (on the mean and per benchmark) is the score one run's best mixture loses on the
    other run, averaged both ways: what a judge as noisy as one real run loses. A proxy whose regret
    is at or below it picks no worse than training the mixtures again would; one above it misses.
    """
    shared = [b for b in first if b in second]
    if not shared:
        raise ValueError("the two runs share no benchmark")
    first_mean, second_mean = benchmark_mean(first, shared, weights), benchmark_mean(second, shared, weights)
    rho = spearman(first_mean, second_mean)
    return {
        "mean_score": {
            "n": int(first_mean.size),
            "spearman": rho,
            "spearman_90": list(spearman_interval(first_mean, second_mean)),
            "kendall": kendall_tau(first_mean, second_mean),
            "ceiling": float(np.sqrt(rho)) if np.isfinite(rho) and rho > 0 else float("nan"),
            "regret": _regret_both_ways(first_mean, second_mean),
        },
        "per_benchmark": {b: {"spearman": spearman(first[b], second[b]), "kendall": kendall_tau(first[b], second[b]),
                              "regret": _regret_both_ways(first[b], second[b])}
                          for b in shared},
    }


def _regret_both_ways(first: Sequence[float], second: Sequence[float]) -> float:
    return (top1_regret(first, second) + top1_regret(second, first)) / 2


def mean_score_row(proxy_mean: np.ndarray, real_mean: np.ndarray, *, interval: bool = False) -> dict[str, Any]:
    """ρ, τ and top-1 regret of a predicted mean-score ranking against the real one (with ``interval``, ρ's
    90 % bootstrap interval too)."""
    row: dict[str, Any] = {"spearman": spearman(proxy_mean, real_mean), "kendall": kendall_tau(proxy_mean, real_mean),
                           "regret": top1_regret(proxy_mean, real_mean)}
    if interval:
        row["spearman_90"] = list(spearman_interval(proxy_mean, real_mean))
    return row
