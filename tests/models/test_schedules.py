from __future__ import annotations

import math

import pytest

from dmo.errors import ConfigError
from dmo.models.schedules import SCHEDULES, kept_vision_tokens, mean_retention, retention_schedule


def test_prd_matches_the_reference_values_for_eight_layers():
    schedule = retention_schedule("prd_shifted_cosine", 8)
    assert schedule == pytest.approx([1, 1, 0.812, 0.611, 0.389, 0.188, 0.15, 0.15], abs=5e-4)


@pytest.mark.parametrize("num_layers", [8, 16, 32])
def test_prd_mean_retention_is_53_75_percent(num_layers):
    assert mean_retention(retention_schedule("prd_shifted_cosine", num_layers)) == pytest.approx(0.5375, abs=1e-12)


def test_prd_is_non_increasing_and_respects_floor_and_dense_threshold():
    schedule = retention_schedule("prd_shifted_cosine", 24, dense_above=0.9, floor=0.2)
    assert all(a >= b for a, b in zip(schedule, schedule[1:]))
    assert min(schedule) == pytest.approx(0.2)
    assert all(r == 1.0 or r <= 0.9 for r in schedule)


def test_single_layer_schedules_are_dense():
    assert retention_schedule("prd_shifted_cosine", 1) == (1.0,)
    assert retention_schedule("linear", 1) == (1.0,)


def test_linear_goes_from_one_to_floor():
    schedule = retention_schedule("linear", 5, floor=0.2)
    assert schedule == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])


def test_constant_dense_and_explicit():
    assert retention_schedule("constant", 3, constant=0.25) == (0.25, 0.25, 0.25)
    assert retention_schedule("dense", 2) == (1.0, 1.0)
    assert retention_schedule("explicit", 3, retention=[1, 0.5, 0.3]) == (1.0, 0.5, 0.3)


def test_explicit_needs_one_value_per_layer():
    with pytest.raises(ConfigError, match="3 values for 4"):
        retention_schedule("explicit", 4, retention=[1, 0.5, 0.3])


def test_unknown_schedule_lists_known_names():
    with pytest.raises(ConfigError) as info:
        retention_schedule("cosine", 8)
    assert all(name in str(info.value) for name in SCHEDULES)


def test_unknown_parameter_and_out_of_range_retention_are_refused():
    with pytest.raises(ConfigError, match="unknown schedule parameter"):
        retention_schedule("constant", 2, capacity=0.5)
    with pytest.raises(ConfigError, match=r"\(0, 1\]"):
        retention_schedule("explicit", 2, retention=[1.0, 0.0])


def test_kept_vision_tokens_floors_without_float_noise():
    assert kept_vision_tokens(64, 0.15) == 9
    assert kept_vision_tokens(64, 1.0) == 64
    assert kept_vision_tokens(100, 0.29) == 29  # 100·0.29 = 28.999999999999996 in floats
    assert kept_vision_tokens(10, 0.05) == 0
    assert all(kept_vision_tokens(n, r) == math.floor(round(n * r, 9)) for n in (7, 49, 64) for r in (0.3, 0.61, 0.85))
