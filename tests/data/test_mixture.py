from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dmo.data import MixtureStream, mixture_counts
from dmo.errors import MergeError


@pytest.mark.parametrize("budget", [0, 1, 7, 100, 102_400])
@pytest.mark.parametrize("weights", [[1.0], [0.5, 0.5], [0.1, 0.2, 0.3, 0.4], [1 / 3] * 3, [0.125, 0.875, 0.0]])
def test_counts_sum_to_budget_and_follow_weights(weights, budget):
    counts = mixture_counts(weights, budget)
    assert sum(counts) == budget
    assert all(abs(c - w * budget) < 1 for c, w in zip(counts, weights))


def test_counts_are_largest_remainder():
    assert mixture_counts([1 / 3, 1 / 3, 1 / 3], 10) == [4, 3, 3]
    assert mixture_counts([0.25, 0.75], 2) == [1, 1]  # remainders tie at .5: the lower index wins
    assert mixture_counts([0.75, 0.25], 2) == [2, 0]
    assert mixture_counts([0.16, 0.84], 10) == [2, 8]


@pytest.mark.parametrize(
    ("weights", "message"),
    [([0.5, float("nan")], "finite"), ([-0.1, 1.1], "non-negative"), ([0.5, 0.4], "sum to 0.9, not 1")],
)
def test_bad_weights_are_refused(weights, message):
    with pytest.raises(MergeError, match=message):
        mixture_counts(weights, 10)


def test_stream_is_seeded_and_follows_weights():
    weights = [0.2, 0.5, 0.3]
    first = MixtureStream(weights, [50, 60, 70], seed=1).take(20_000)
    again = MixtureStream(weights, [50, 60, 70], seed=1).take(20_000)
    assert first == again
    freq = Counter(d for d, _ in first)
    assert np.allclose([freq[i] / 20_000 for i in range(3)], weights, atol=0.015)


def test_stream_visits_every_sample_before_repeating():
    stream = MixtureStream([0.0, 1.0], [3, 10], seed=0)
    indices = [i for _, i in stream.take(10)]
    assert sorted(indices) == list(range(10))


def test_stream_state_restores_exactly():
    stream = MixtureStream([0.4, 0.6], [5, 7], seed=3)
    stream.take(13)
    state = stream.state()
    expected = stream.take(25)
    resumed = MixtureStream([0.4, 0.6], [5, 7], seed=99)
    resumed.restore(state)
    assert resumed.take(25) == expected
