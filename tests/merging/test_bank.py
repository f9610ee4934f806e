"""TaskVectorBank: proxies θ0 + Δᵀc(w) built in memory and written into a bound model."""

from __future__ import annotations

import pytest
import torch

from dmo.errors import MergeError
from dmo.merging import TaskVectorBank, get_method
from dmo.models import ModMLLMForCausalLM

VISION = "model.vision_tower."
# Methods whose merge of identical / one-hot experts must give back an expert
# (DARE with density 1 drops nothing; at density < 1 it would not).
EXACT = [
    "linear",
    "task_arithmetic",
    "ties",
    ("dare_linear", {"density": 1.0}),
    ("dare_ties", {"density": 1.0}),
]


def _method(case):
    return get_method(*case) if isinstance(case, tuple) else get_method(case)


@pytest.fixture(scope="module")
def bank(base_sd, expert_sds) -> TaskVectorBank:
    return TaskVectorBank.from_state_dicts(base_sd, expert_sds)


def test_layout_excludes_the_vision_tower_by_default(bank, base_sd) -> None:
    merged = set(bank.merged_names)
    assert merged and not any(name.startswith(VISION) for name in merged)
    assert {name for name in base_sd if name.startswith(VISION)} <= set(bank.kept)
    assert bank.num_params == sum(base_sd[name].numel() for name in merged)
    assert bank.deltas.shape == (3, bank.num_params) and bank.deltas.is_contiguous()
    assert bank.nbytes >= 4 * bank.num_params * 4


@pytest.mark.parametrize("case", EXACT)
def test_merging_copies_of_one_expert_returns_it(case, base_sd, expert_sds) -> None:
    bank = TaskVectorBank.from_state_dicts(base_sd, [expert_sds[1]] * 3, exclude=())
    merged = bank.merged_state_dict([0.5, 0.25, 0.25], _method(case))
    for name, tensor in expert_sds[1].items():
        assert torch.allclose(merged[name], tensor, rtol=0, atol=1e-6), name


@pytest.mark.parametrize("case", EXACT)
@pytest.mark.parametrize("index", [0, 2])
def test_one_hot_weights_return_that_expert(case, index, base_sd, expert_sds) -> None:
    bank = TaskVectorBank.from_state_dicts(base_sd, expert_sds, exclude=())
    weights = [1.0 if i == index else 0.0 for i in range(3)]
    merged = bank.merged_state_dict(weights, _method(case))
    for name, tensor in expert_sds[index].items():
        assert torch.allclose(merged[name], tensor, rtol=0, atol=1e-6), name


def test_task_arithmetic_matches_float64_reference(bank, base_sd, expert_sds) -> None:
    weights, lam = [0.2, 0.5, 0.6], 0.7  # off the simplex on purpose: no normalisation
    merged = bank.merged_state_dict(weights, get_method("task_arithmetic", {"lambda": lam}))
    for name in bank.merged_names:
        base = base_sd[name].double()
        task_vectors = [e[name].double() - base for e in expert_sds]
        reference = base + lam * sum(w * tv for w, tv in zip(weights, task_vectors))
        assert (merged[name].double() - reference).abs().max() <= 1e-6, name


def test_excluded_parameters_keep_base_values(bank, base_sd) -> None:
    merged = bank.merged_state_dict([0.1, 0.2, 0.7], "linear")
    vision = [name for name in base_sd if name.startswith(VISION)]
    assert vision
    for name in vision:
        assert torch.equal(merged[name], base_sd[name])
    name = "model.embed_tokens.weight"
    assert not torch.equal(merged[name], base_sd[name])


def test_include_patterns_restrict_what_merges(base_sd, expert_sds) -> None:
    bank = TaskVectorBank.from_state_dicts(
        base_sd, expert_sds, include=["model.layers.*"], exclude=["*.router.*"]
    )
    assert all(n.startswith("model.layers.") and ".router." not in n for n in bank.merged_names)
    merged = bank.merged_state_dict([1.0, 0.0, 0.0])
    assert torch.equal(merged["lm_head.weight"], base_sd["lm_head.weight"])
    with pytest.raises(MergeError, match="select no parameter"):
        TaskVectorBank.from_state_dicts(base_sd, expert_sds, include=["nothing.*"])


def test_bfloat16_storage_is_within_bfloat16_tolerance(bank, base_sd, expert_sds) -> None:
    small = TaskVectorBank.from_state_dicts(base_sd, expert_sds, storage_dtype=torch.bfloat16)
    assert small.deltas.dtype == torch.bfloat16 and small.deltas.nbytes * 2 == bank.deltas.nbytes
    weights = [0.3, 0.3, 0.4]
    exact, approx = bank.merged_flat(weights), small.merged_flat(weights)
    # each |Δ| is rounded by at most 2^-8 relative; the coefficients sum to 1
    bound = bank.deltas.abs().max().item() * 2.0**-8
    error = (exact - approx).abs().max().item()
    assert 0 < error <= bound
    assert approx.dtype == torch.float32


def test_bound_model_parameters_are_views_written_in_place(bank, base_sd, make_config) -> None:
    model = ModMLLMForCausalLM(make_config()).eval()
    bank.load_into(model, [0.2, 0.3, 0.5], "task_arithmetic")
    first = model.model.embed_tokens.weight.data_ptr()
    reference = bank.merged_state_dict([0.6, 0.2, 0.2], "task_arithmetic")
    bank.load_into(model, [0.6, 0.2, 0.2], "task_arithmetic")
    assert model.model.embed_tokens.weight.data_ptr() == first  # no new storage per proxy
    state = model.state_dict()
    for name, tensor in reference.items():
        assert torch.equal(state[name], tensor), name
    for name in bank.kept:
        assert torch.equal(state[name], base_sd[name])


def test_rebinds_when_the_model_storage_was_replaced(bank, make_config) -> None:
    model = ModMLLMForCausalLM(make_config()).eval()
    bank.bind(model)
    with torch.no_grad():
        model.lm_head.weight.data = model.lm_head.weight.data.clone()  # binding broken
    bank.load_into(model, [0.0, 1.0, 0.0], "linear")
    expected = bank.merged_state_dict([0.0, 1.0, 0.0], "linear")["lm_head.weight"]
    assert torch.equal(model.lm_head.weight, expected)


def test_proxy_model_runs_like_one_loaded_from_a_state_dict(bank, make_config) -> None:
    weights = [0.5, 0.5, 0.0]
    bound = bank.load_into(ModMLLMForCausalLM(make_config()).eval(), weights)
    loaded = ModMLLMForCausalLM(make_config()).eval()
    loaded.load_state_dict(bank.merged_state_dict(weights))
    input_ids = torch.tensor([[1, 5, 6, 7, 2]])
    with torch.no_grad():
        assert torch.equal(bound(input_ids=input_ids).logits, loaded(input_ids=input_ids).logits)


def test_bind_refuses_other_shapes_and_dtypes(bank, make_config) -> None:
    with pytest.raises(MergeError, match="shape"):
        bank.bind(ModMLLMForCausalLM(make_config(intermediate_size=40)))
    with pytest.raises(MergeError, match="float32"):
        bank.bind(ModMLLMForCausalLM(make_config()).to(torch.bfloat16))


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([0.5, 0.5], "expected 3 weights, got 2"),
        ([0.5, -0.1, 0.6], "non-negative"),
        ([float("nan"), 0.5, 0.5], "NaN"),
    ],
)
def test_bad_weights_are_refused(bank, weights, message) -> None:
    with pytest.raises(MergeError, match=message):
        bank.merged_flat(weights)


def test_sparse_methods_do_not_modify_the_bank(bank) -> None:
    before = bank.deltas.clone()
    bank.merged_flat([0.2, 0.3, 0.5], get_method("dare_ties", {"density": 0.5}))
    bank.merged_flat([0.2, 0.3, 0.5], get_method("ties", {"density": 0.5}))
    assert torch.equal(bank.deltas, before)


def test_dare_is_a_function_of_weights_and_seed(bank) -> None:
    dare = get_method("dare_linear", {"density": 0.5, "seed": 1})
    first = bank.merged_flat([0.2, 0.3, 0.5], dare)
    assert torch.equal(first, bank.merged_flat([0.2, 0.3, 0.5], dare))
    reseeded = get_method("dare_linear", {"density": 0.5, "seed": 2})
    other = bank.merged_flat([0.2, 0.3, 0.5], reseeded)
    assert not torch.equal(first, other)


def test_bfloat16_blocks_cover_every_column() -> None:
    generator = torch.Generator().manual_seed(0)
    base = {
        "w": torch.randn(1_300_001, generator=generator),  # > one upcast block, ragged last block
        "b": torch.randn(7, generator=generator),
    }
    experts = [
        {k: v + 0.1 * torch.randn(v.shape, generator=generator) for k, v in base.items()}
        for _ in range(2)
    ]
    exact = TaskVectorBank.from_state_dicts(base, experts).merged_flat([0.4, 0.6])
    small = TaskVectorBank.from_state_dicts(base, experts, storage_dtype=torch.bfloat16)
    approx = small.merged_flat([0.4, 0.6])
    assert (exact - approx).abs().max() <= 0.5 * 2.0**-8  # |Δ| < 0.5 here (5 σ of 0.1)
