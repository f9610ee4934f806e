"""The merge-method registry: mergekit's names, defaults and formulas, tensor by tensor."""

from __future__ import annotations

import pytest
import torch
from mergekit.merge_methods import merge_state_dicts
from mergekit.merge_methods import registry as mergekit_registry

from dmo.errors import MergeError
from dmo.merging.methods import METHODS, SparseTaskArithmetic, get_method
from dmo.merging.methods.dare import bernoulli_sparsify
from dmo.merging.methods.ties import magnitude_sparsify, majority_sign_mask

WEIGHTS = [0.2, 0.3, 0.5]
# (method, params) pairs run against mergekit's in-process merge_state_dicts.
CASES = [
    ("linear", {}),
    ("linear", {"normalize": False}),
    ("task_arithmetic", {}),
    ("task_arithmetic", {"lambda": 0.7, "normalize": True}),
    ("ties", {}),
    ("ties", {"density": 0.4}),
    ("ties", {"density": 0.5, "lambda": 1.3, "int8_mask": True}),
    ("dare_linear", {"density": 0.5, "seed": 3}),
    ("dare_ties", {"density": 0.6, "seed": 4}),
]


def test_registry_lists_the_methods_both_tools_share() -> None:
    assert list(METHODS) == ["linear", "task_arithmetic", "ties", "dare_ties", "dare_linear"]
    for name in METHODS:
        assert mergekit_registry.get(name).spec.name == name


def test_unknown_method_error_lists_known_names() -> None:
    with pytest.raises(MergeError) as caught:
        get_method("slerp")
    assert "slerp" in caught.value.message
    assert all(name in caught.value.hint for name in METHODS)
    assert caught.value.where == "search.merge.method"


@pytest.mark.parametrize("name", ["task_arithmetic", "ties", "dare_ties", "dare_linear"])
def test_defaults_are_mergekits(name: str) -> None:
    ours, theirs = METHODS[name], mergekit_registry.get(name)
    defaults = {p.name: p.default for p in theirs.spec.parameters if not p.required}
    assert ours.lambda_ == defaults["lambda"]
    assert ours.normalize == defaults["normalize"]
    if isinstance(ours, SparseTaskArithmetic):
        assert ours.rescale == defaults["rescale"]
        assert ours.density == defaults["density"]
        assert ours.int8_mask == defaults["int8_mask"]
        assert ours.consensus == (theirs.consensus_method is not None)
        assert ours.sparsification == theirs.sparsification_method.value


def test_linear_normalizes_by_default_like_mergekit() -> None:
    parameters = mergekit_registry.get("linear").spec.parameters
    defaults = {p.name: p.default for p in parameters if not p.required}
    assert METHODS["linear"].normalize is True is defaults["normalize"]


def test_params_make_new_instances_and_are_validated() -> None:
    ties = get_method("ties", {"density": 0.3, "lambda": 2.0})
    assert (ties.density, ties.lambda_, ties.name) == (0.3, 2.0, "ties")
    assert METHODS["ties"].density == 1.0  # the registered instance is untouched
    assert get_method("task_arithmetic", {"normalize": 1.0}).normalize is True
    with pytest.raises(MergeError, match="no parameter 'density'") as caught:
        get_method("task_arithmetic", {"density": 0.5})
    assert "lambda" in caught.value.hint
    with pytest.raises(MergeError, match="invalid value") as caught:
        get_method("ties", {"density": 1.5})
    assert caught.value.where == "search.merge.params.density"
    with pytest.raises(MergeError):
        get_method("task_arithmetic", {"lambda": float("nan")})


@pytest.mark.parametrize(("name", "params"), CASES)
def test_same_output_as_mergekit_merge_state_dicts(name, params, base_sd, expert_sds) -> None:
    method = get_method(name, params)
    mergekit_params = {key: value for key, value in params.items() if key != "seed"}
    weights = torch.tensor(WEIGHTS)
    generator = torch.Generator().manual_seed(method.seed) if method.seed is not None else None
    ours = {}
    for tensor_name, base in base_sd.items():
        deltas = torch.stack([expert[tensor_name] - base for expert in expert_sds])
        ours[tensor_name] = method.merge_tensor(base, deltas, weights, generator=generator)
    if name == "linear":
        parameters = {"weight": WEIGHTS, **mergekit_params}
        theirs = merge_state_dicts(expert_sds, "linear", parameters=parameters)
    else:
        torch.manual_seed(method.seed or 0)  # mergekit draws DARE masks from the global generator
        theirs = merge_state_dicts(
            [base_sd, *expert_sds], name, base=0, parameters={"weight": WEIGHTS, **mergekit_params}
        )
    for tensor_name in base_sd:
        assert (ours[tensor_name] - theirs[tensor_name]).abs().max() <= 1e-6, tensor_name


def test_magnitude_keeps_the_largest_fraction() -> None:
    tensor = torch.tensor([[0.1, -3.0, 0.2], [2.0, -0.05, 0.0]])
    kept = magnitude_sparsify(tensor, 0.5, rescale_l1=False)
    assert torch.equal(kept, torch.tensor([[0.0, -3.0, 0.2], [2.0, 0.0, 0.0]]))
    at_least_one = magnitude_sparsify(tensor, 0.01, rescale_l1=False)
    assert int((at_least_one != 0).sum()) == 1


def test_random_drop_is_seeded_and_rescales_to_the_l1_norm() -> None:
    tensor = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    first = bernoulli_sparsify(tensor, 0.3, True, torch.Generator().manual_seed(7))
    again = bernoulli_sparsify(tensor, 0.3, True, torch.Generator().manual_seed(7))
    other = bernoulli_sparsify(tensor, 0.3, True, torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert 200 < int((first != 0).sum()) < 400
    assert torch.isclose(first.abs().sum(), tensor.abs().sum(), rtol=1e-5)


def test_majority_sign_follows_the_weighted_sum() -> None:
    # column sums: -1, 0.5, 0.8
    deltas = torch.tensor([[1.0, -1.0, 0.5], [-3.0, -1.0, 0.5], [1.0, 2.5, -0.2]])
    mask = majority_sign_mask(deltas, torch.float32)
    expected = torch.tensor([[False, False, True], [True, False, True], [False, True, False]])
    assert torch.equal(mask, expected)


def test_the_config_s_method_names_and_parameters_are_the_registry_s():
    """Configs are checked against dmo.config.names (light, no torch); merges use the registry:
    a method or parameter added to one and not the other would pass validation and fail at merge time."""
    from dmo.config.names import FUSED_MERGE_METHODS, MERGE_METHODS
    from dmo.merging.methods import METHODS

    assert set(MERGE_METHODS) == set(METHODS)
    for name, method in METHODS.items():
        assert set(MERGE_METHODS[name]) == set(method.PARAMS), name
    assert set(FUSED_MERGE_METHODS) == {name for name, method in METHODS.items() if method.fused}


def test_the_config_s_bank_layouts_are_the_ones_open_bank_knows():
    from typing import get_args

    from dmo.config.names import BANK_LAYOUTS
    from dmo.config.schema import MergeSettings

    assert get_args(MergeSettings.model_fields["bank"].annotation) == BANK_LAYOUTS
