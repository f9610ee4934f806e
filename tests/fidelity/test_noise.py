"""The run-to-run noise split that says whether bigger dev splits could raise test–retest."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dmo.fidelity.noise import item_variance, mean_item_variance, noise_components


def test_components_recover_a_simulated_signal_and_run_noise():
    rng = np.random.default_rng(0)
    truth = rng.normal(50.0, 10.0, size=20_000)
    first, second = truth + rng.normal(0, 2.0, truth.size), truth + rng.normal(0, 2.0, truth.size)
    parts = noise_components(first, second, item=None)
    assert parts.signal == pytest.approx(100.0, rel=0.05)
    assert parts.run == pytest.approx(4.0, rel=0.05)
    assert parts.reliability() == pytest.approx(100 / 104, abs=0.01)
    assert parts.reliability(math.inf) == parts.reliability()  # no item count: nothing to remove


def test_identical_runs_are_perfectly_reliable():
    parts = noise_components([10.0, 20.0, 40.0], [10.0, 20.0, 40.0], item=5.0)
    assert parts.run == 0.0 and parts.item == 0.0  # the item bound is capped at what was measured
    assert parts.reliability() == 1.0


def test_more_items_raise_reliability_only_by_the_item_share():
    parts = noise_components([10.0, 22.0, 41.0, 30.0], [12.0, 20.0, 40.0, 33.0], item=1.0)
    assert parts.reliability() < parts.reliability(4.0) < parts.reliability(math.inf) < 1.0
    expected = parts.signal / (parts.signal + parts.run - parts.item)
    assert parts.reliability(math.inf) == pytest.approx(expected)


def test_item_variance_is_binomial_in_score_points():
    assert item_variance([50.0], 100) == pytest.approx(25.0)  # 0.5 · 0.5 / 100, in points²
    assert item_variance([0.0, 100.0], 10) == 0.0
    assert mean_item_variance({"a": 4.0, "b": 4.0}) == pytest.approx(2.0)
    assert mean_item_variance({"a": 4.0, "b": 8.0}, {"a": 1.0, "b": 0.0}) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="at least one item"):
        item_variance([50.0], 0)


def test_runs_must_pair_up():
    with pytest.raises(ValueError, match="two runs"):
        noise_components([1.0, 2.0, 3.0], [1.0, 2.0], item=None)
