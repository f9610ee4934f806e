"""Weight vectors: parsed from the CLI, validated everywhere with a message naming the problem."""

from __future__ import annotations

import pytest

from dmo.errors import MergeError
from dmo.merging.weights import parse_weights, validate_weights


def test_parse_reads_comma_separated_numbers() -> None:
    assert parse_weights("0.5, 0.25,0.25") == (0.5, 0.25, 0.25)
    assert parse_weights("1e-1,9e-1") == (0.1, 0.9)


@pytest.mark.parametrize("text", ["", "0.5,,0.5", "0.5;0.5", "half,half"])
def test_parse_refuses_what_is_not_a_list_of_numbers(text: str) -> None:
    with pytest.raises(MergeError) as caught:
        parse_weights(text)
    assert caught.value.where == "--weights" and "0.5,0.5" in caught.value.hint


def test_valid_weights_come_back_as_floats() -> None:
    assert validate_weights([1, 0, 0], 3, require_simplex=True) == (1.0, 0.0, 0.0)
    assert validate_weights([0.2, 0.5], 2) == (0.2, 0.5)  # off the simplex is fine unless required


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([0.5, 0.5], "got 2 weights for 3 experts"),
        ([0.5, -0.25, 0.75], "weight 1 is negative"),
        ([float("nan"), 0.5, 0.5], "weight 0 is nan"),
        ([float("inf"), 0.0, 0.0], "weight 0 is inf"),
    ],
)
def test_problems_are_named(weights, message) -> None:
    with pytest.raises(MergeError, match=message):
        validate_weights(weights, 3)


def test_simplex_is_required_only_when_asked() -> None:
    with pytest.raises(MergeError, match="sum to 0.9") as caught:
        validate_weights([0.3, 0.6], 2, require_simplex=True, where="--weights")
    assert "--normalize" in caught.value.hint and caught.value.where == "--weights"
    assert validate_weights([0.3, 0.7 + 1e-9], 2, require_simplex=True)[1] == pytest.approx(0.7)


def test_normalize_rescales_onto_the_simplex() -> None:
    assert validate_weights([1, 3], 2, normalize=True) == (0.25, 0.75)
    with pytest.raises(MergeError, match="cannot be normalised"):
        validate_weights([0, 0], 2, normalize=True)
