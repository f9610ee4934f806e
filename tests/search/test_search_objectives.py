from __future__ import annotations

import math
from typing import get_args

import pytest

from dmo.config.schema import ObjectiveSettings
from dmo.errors import SearchError
from dmo.config import names
from dmo.search.objectives import (
    OBJECTIVES,
    compute_objective,
    objective_directions,
    objective_names,
    objective_values,
)

SCORES = {"general": 60.0, "ocr": 40.0, "counting": 80.0, "chart": 20.0}


def test_mean_is_the_default() -> None:
    settings = ObjectiveSettings()
    assert settings.kind == "mean"
    assert compute_objective(SCORES, settings) == pytest.approx(50.0)
    assert objective_directions(settings) == ["maximize"]


def test_mean_over_chosen_benchmarks_and_missing_ones_are_errors() -> None:
    settings = ObjectiveSettings(kind="mean")
    assert compute_objective(SCORES, settings, ["general", "counting"]) == pytest.approx(70.0)
    with pytest.raises(SearchError, match="no score for benchmarks maps"):
        compute_objective(SCORES, settings, ["general", "maps"])


def test_weighted_normalises_the_weights() -> None:
    settings = ObjectiveSettings(kind="weighted", weights={"general": 3.0, "chart": 1.0})
    # (3·60 + 1·20) / 4; benchmarks without a weight do not count.
    assert compute_objective(SCORES, settings) == pytest.approx(50.0)
    doubled = ObjectiveSettings(kind="weighted", weights={"general": 6.0, "chart": 2.0})
    assert compute_objective(SCORES, doubled) == compute_objective(SCORES, settings)
    only_ocr = ObjectiveSettings(kind="weighted", weights={"ocr": 1.0})
    assert compute_objective(SCORES, only_ocr) == 40.0


@pytest.mark.parametrize(
    ("weights", "fragment"),
    [
        ({"general": -1.0, "ocr": 2.0}, "non-negative: general"),
        ({"general": 0.0, "ocr": 0.0}, "all zero"),
        ({"maps": 1.0}, "no score for benchmarks maps"),
    ],
)
def test_weighted_refuses_bad_weights(weights: dict[str, float], fragment: str) -> None:
    with pytest.raises(SearchError, match=fragment) as info:
        compute_objective(SCORES, ObjectiveSettings(kind="weighted", weights=weights))
    assert info.value.where.startswith("search.objective")


def test_worst_is_the_lowest_domain_benchmark() -> None:
    settings = ObjectiveSettings(kind="worst")
    assert compute_objective(SCORES, settings) == 20.0
    assert compute_objective(SCORES, settings, ["general", "ocr", "counting"]) == 40.0


def test_multi_is_mean_and_worst_both_maximised() -> None:
    settings = ObjectiveSettings(kind="multi")
    assert compute_objective(SCORES, settings) == pytest.approx((50.0, 20.0))
    assert objective_directions(settings) == ["maximize", "maximize"]
    assert objective_names(settings) == ["mean", "worst"]


@pytest.mark.parametrize("kind", ["mean", "worst", "multi"])
def test_values_tuple_has_one_entry_per_direction(kind: str) -> None:
    settings = ObjectiveSettings(kind=kind)
    values = objective_values(SCORES, settings)
    assert isinstance(values, tuple)
    assert len(values) == len(objective_directions(settings)) == len(names.OBJECTIVES[kind])


def test_bad_scores_are_refused() -> None:
    with pytest.raises(SearchError, match="no benchmark scores"):
        compute_objective({}, ObjectiveSettings())
    with pytest.raises(SearchError, match="NaN or infinite: ocr"):
        compute_objective({"general": 50.0, "ocr": math.nan}, ObjectiveSettings())


def test_registry_covers_every_kind_the_schema_allows() -> None:
    allowed = get_args(ObjectiveSettings.model_fields["kind"].annotation)
    assert set(allowed) == set(OBJECTIVES)


def test_every_objective_kind_has_its_value_names_in_the_light_module() -> None:
    assert set(OBJECTIVES) == set(names.OBJECTIVES)


def test_the_mean_a_search_maximises_is_weighted_by_its_benchmarks_or_its_objective(repo_root):
    """One rule for the search (SearchPlan) and its validation (dmo.fidelity.validate)."""
    from search_support import configured

    from dmo.config import load_config
    from dmo.search.driver import SearchPlan
    from dmo.search.objectives import mean_weights

    declared = load_config(repo_root / "configs" / "demo.yaml")
    assert mean_weights(declared) is None  # every weight 1: the plain mean
    heavier = declared.model_copy(update={"benchmarks": tuple(
        b.model_copy(update={"weight": 3.0}) if b.name == "ocr_dev" else b for b in declared.benchmarks)})
    weights = mean_weights(heavier)
    assert weights["ocr_dev"] == 3.0 and weights["general_dev"] == 1.0 and "shape_present_report" not in weights
    assert SearchPlan.of(heavier).objective.weights == weights
    own = configured(load_config(repo_root / "configs" / "tiny.yaml"), search__objective={
        "kind": "weighted", "weights": {"general": 2.0, "ocr": 1.0, "counting": 1.0}})
    assert mean_weights(own) == {"general": 2.0, "ocr": 1.0, "counting": 1.0}
    for kind in ("worst", "multi"):  # these take the plain mean, so validation must not weight it
        other = heavier.model_copy(update={"search": heavier.search.model_copy(update={
            "objective": heavier.search.objective.model_copy(update={"kind": kind})})})
        assert mean_weights(other) is None and SearchPlan.of(other).objective.kind == kind
