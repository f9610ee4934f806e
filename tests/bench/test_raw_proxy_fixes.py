"""bench/raw_proxy_fixes.py: a floor at the base's score removes a benchmark's merge-only spread."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest


def _results(rows: list[tuple[float, dict[str, float], dict[str, float]]]) -> tuple:
    return tuple(SimpleNamespace(weights={"a": w, "b": 1 - w}, group="draw", proxy_scores=proxy, real_scores=real)
                 for w, proxy, real in rows)


def test_a_floor_at_the_base_s_score_lets_the_benchmark_that_moves_rank_the_mean():
    from raw_proxy_fixes import judge_fixes

    # x ranks the real mean rightly; the proxy loses y (which the base solves: 100) at low w, in the
    # opposite order, and its 0–90 spread swamps x's 1–4 in the raw mean.
    results = _results([
        (0.2, {"x": 4.0, "y": 0.0}, {"x": 40.0, "y": 100.0}),
        (0.4, {"x": 3.0, "y": 30.0}, {"x": 30.0, "y": 100.0}),
        (0.6, {"x": 2.0, "y": 60.0}, {"x": 20.0, "y": 100.0}),
        (0.8, {"x": 1.0, "y": 90.0}, {"x": 10.0, "y": 100.0}),
    ])
    judged = judge_fixes(results, ["x", "y"], {"y": 100.0})
    assert judged["n"] == 4
    assert judged["raw"] == pytest.approx(-1.0)  # y's spread decides the raw mean, backwards
    assert judged["floored"] == pytest.approx(1.0)  # floored, y is flat and x decides
    assert math.isnan(judged["rank_mean"])  # x's and y's ranks cancel (opposite orders): a constant, no ρ
    assert judge_fixes(results, ["x", "y"], {})["floored"] == pytest.approx(-1.0)  # no floor: the raw mean


def test_a_search_pick_is_left_out_and_a_mixture_trained_twice_counts_once():
    from raw_proxy_fixes import judge_fixes

    rows = [(0.2, {"x": 1.0}, {"x": 10.0}), (0.5, {"x": 2.0}, {"x": 20.0}), (0.5, {"x": 2.0}, {"x": 30.0}),
            (0.8, {"x": 3.0}, {"x": 30.0})]
    pick = SimpleNamespace(weights={"a": 0.9, "b": 0.1}, group="pick", proxy_scores={"x": 9.0}, real_scores={"x": 0.0})
    judged = judge_fixes((*_results(rows), pick), ["x"], {})
    assert judged["n"] == 3 and judged["raw"] == pytest.approx(1.0)  # w 0.5 at the mean of its runs, 25
