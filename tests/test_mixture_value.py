"""The one Mixture value type, validator and parser: every problem named, the same message everywhere."""

from __future__ import annotations

import math

import pytest

from dmo.errors import MergeError
from dmo.mixture import Mixture, check_weights, parse_floats

NAMES = ("general", "ocr", "counting", "chart")


def test_parse_reads_comma_separated_numbers() -> None:
    assert parse_floats("0.5, 0.25,0.25") == (0.5, 0.25, 0.25)
    assert parse_floats("1e-1,9e-1") == (0.1, 0.9)


@pytest.mark.parametrize("text", ["", "0.5,,0.5", "0.5;0.5", "half,half"])
def test_parse_refuses_what_is_not_a_list_of_numbers(text: str) -> None:
    with pytest.raises(MergeError) as caught:
        parse_floats(text)
    assert caught.value.where == "--weights" and "0.5,0.5" in caught.value.hint


def test_a_mapping_is_ordered_by_the_domains() -> None:
    mixture = Mixture.of(NAMES, {"chart": 0.1, "ocr": 0.2, "general": 0.3, "counting": 0.4})
    assert mixture.weights == (0.3, 0.2, 0.4, 0.1) and mixture["chart"] == 0.1
    assert mixture.as_dict() == {"general": 0.3, "ocr": 0.2, "counting": 0.4, "chart": 0.1}


@pytest.mark.parametrize(
    ("weights", "fragment"),
    [
        ([0.5, 0.5, 0.5, -0.5], "non-negative, got chart=-0.5"),
        ([0.5, math.nan, 0.25, 0.25], "NaN or infinite for ocr"),
        ([0.5, math.inf, 0.25, 0.25], "NaN or infinite for ocr"),
        ([0.5, 0.5], "expected 4 weights, got 2"),
        ([0.3, 0.3, 0.3, 0.3], "sum to 1.2, not 1"),
        ({"general": 1.0}, "missing ocr, counting, chart"),
        ({"general": 1.0, "ocr": 0, "counting": 0, "chart": 0, "maps": 0}, "unknown maps"),
    ],
)
def test_every_problem_is_named_with_where_it_came_from(weights: object, fragment: str) -> None:
    with pytest.raises(MergeError) as caught:
        Mixture.of(NAMES, weights, where="recipe.weights")  # type: ignore[arg-type]
    assert fragment in str(caught.value)
    assert caught.value.where == "recipe.weights"


def test_a_wrong_length_lists_the_expected_domains() -> None:
    with pytest.raises(MergeError) as caught:
        Mixture.parse("1.0", NAMES)
    assert "general, ocr, counting, chart" in caught.value.hint and caught.value.where == "--weights"


def test_a_sum_off_by_more_than_a_millionth_points_at_the_flag() -> None:
    assert math.isclose(sum(Mixture.of(NAMES, [0.25, 0.25, 0.25, 0.25 + 5e-7]).weights), 1.0)
    with pytest.raises(MergeError, match="sum to 0.9") as caught:
        Mixture.parse("0.3,0.6,0,0", NAMES)
    assert "--normalize" in caught.value.hint


def test_normalize_rescales_ratios_but_refuses_negatives_and_zeros() -> None:
    assert Mixture.parse("3,1,0,0", NAMES, normalize=True).weights == (0.75, 0.25, 0.0, 0.0)
    with pytest.raises(MergeError, match="non-negative"):
        Mixture.parse("3,-1,0,0", NAMES, normalize=True)
    with pytest.raises(MergeError, match="all zero"):
        Mixture.parse("0,0,0,0", NAMES, normalize=True)


def test_merge_weights_may_leave_the_simplex_but_not_the_positive_orthant() -> None:
    assert check_weights([0.2, 0.5], ["x", "y"], simplex=False) == (0.2, 0.5)
    with pytest.raises(MergeError, match="non-negative"):
        check_weights([0.2, -0.5], ["x", "y"], simplex=False)


def test_a_mixture_is_validated_whichever_way_it_is_built() -> None:
    with pytest.raises(MergeError, match="sum to 0.5"):
        Mixture(("a", "b"), (0.25, 0.25))
    with pytest.raises(MergeError, match="each domain once"):
        Mixture(("a", "a"), (0.5, 0.5))
    assert Mixture.uniform(("a", "b")).weights == (0.5, 0.5)
    assert Mixture.one_hot(("a", "b"), "b").weights == (0.0, 1.0)


def test_equal_mixtures_have_equal_keys_whatever_the_order() -> None:
    one = Mixture.of(("a", "b"), {"a": 0.25, "b": 0.75})
    other = Mixture.of(("b", "a"), {"a": 0.25, "b": 0.75 + 1e-12})
    assert one.key() == other.key() == '{"a":0.25,"b":0.75}'


def test_merge_coefficients_are_the_weights_at_power_one_and_lift_small_shares_below_it() -> None:
    from dmo.mixture import merge_coefficients

    w = (0.7, 0.25, 0.05, 0.0)
    assert merge_coefficients(w) == w  # plain task arithmetic: the same floats, not a renormalised copy
    half = merge_coefficients(w, 0.5)
    assert math.fsum(half) == pytest.approx(1.0)
    assert half[3] == 0.0  # a domain left out of the mixture stays out of the merge
    assert half[1] > w[1] and half[2] > w[2] and half[0] < w[0]
    assert half[0] > half[1] > half[2]  # monotone: the shares keep their order
    assert merge_coefficients(w, 0.5) == pytest.approx([math.sqrt(x) / sum(map(math.sqrt, w)) for x in w])


@pytest.mark.parametrize("power", [0.0, -0.5, math.nan, math.inf])
def test_merge_coefficients_refuse_a_power_that_is_not_positive_and_finite(power: float) -> None:
    from dmo.mixture import merge_coefficients

    with pytest.raises(MergeError) as caught:
        merge_coefficients((0.5, 0.5), power)
    assert caught.value.where == "search.merge.weight_power"
