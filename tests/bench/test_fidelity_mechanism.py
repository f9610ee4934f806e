"""bench/fidelity_mechanism.py's noise split reads a validation's two runs per mixture, and only those."""

from __future__ import annotations

from types import SimpleNamespace


def _result(weights, replicate, real, group=None):
    return SimpleNamespace(weights=weights, replicate=replicate, real_scores=real, group=group)


def test_run_noise_pairs_replicates_and_leaves_out_picks():
    from fidelity_mechanism import run_noise

    mixtures = [{"a": 0.1, "b": 0.9}, {"a": 0.5, "b": 0.5}, {"a": 0.9, "b": 0.1}]
    results = [_result(w, r, {"x": 20.0 + 30 * w["a"] + r, "y": 50.0 - 10 * w["a"]})
               for w in mixtures for r in (0, 1)]
    results.append(_result({"a": 0.3, "b": 0.7}, 0, {"x": 99.0, "y": 0.0}, group="pick"))  # never paired
    rows = run_noise(results, ["x", "y"], None, {"x": 100, "y": None})
    assert set(rows) == {"x", "y", "mean score"}
    assert rows["x"]["run"] == 0.5  # every pair differs by exactly one point: (1²)/2
    assert rows["y"]["run"] == 0.0 and rows["y"]["item"] is None
    assert rows["mean score"]["item"] is None  # one benchmark's item count is unknown
    assert 0.0 < rows["x"]["reliability"] <= rows["x"]["reliability_no_item_noise"] <= 1.0


def test_run_noise_needs_two_runs_of_three_mixtures():
    from fidelity_mechanism import run_noise

    results = [_result({"a": float(i)}, 0, {"x": 10.0 * i}) for i in range(5)]
    assert run_noise(results, ["x"], None, {"x": 100}) is None
