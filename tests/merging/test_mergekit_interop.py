"""mergekit interop: our proxies equal mergekit's run_merge on the same checkpoints."""

from __future__ import annotations

import pytest
import torch
import yaml
from mergekit.config import MergeConfiguration
from safetensors.torch import load_file

from dmo.errors import MergeError
from dmo.merging import TaskVectorBank, get_method
from dmo.merging.mergekit_interop import check_tensor_names, mergekit_yaml, run_mergekit
from dmo.models import ModMLLMForCausalLM
from dmo.models.checkpoint import save_checkpoint

WEIGHTS = [0.2, 0.3, 0.5]
CASES = [
    ("linear", {}),
    ("linear", {"normalize": False}),
    ("task_arithmetic", {}),
    ("task_arithmetic", {"lambda": 0.7}),
    ("ties", {"density": 0.5}),
    ("dare_linear", {"density": 0.5, "seed": 3}),
    ("dare_ties", {"density": 0.6, "seed": 5}),
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, make_config, perturb):
    """A base and three experts; 11 layers, so name order is not layer order (10 < 2)."""
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    model = ModMLLMForCausalLM(make_config(num_hidden_layers=11))
    base_sd = perturb(model.state_dict(), 100, 0.02)
    model.load_state_dict(base_sd)
    save_checkpoint(model, root / "base")
    experts = []
    for index in range(3):
        model.load_state_dict(perturb(base_sd, index))
        save_checkpoint(model, root / f"expert{index}")
        experts.append(root / f"expert{index}")
    return root / "base", experts, base_sd


@pytest.mark.parametrize(
    "exclude", [("model.vision_tower.*",), ()], ids=["exclude-vision", "merge-all"]
)
@pytest.mark.parametrize(("name", "params"), CASES)
def test_bank_equals_mergekit_run_merge(checkpoints, tmp_path, name, params, exclude) -> None:
    base, experts, base_sd = checkpoints
    bank = TaskVectorBank.from_checkpoints(base, experts, exclude=exclude)
    ours = bank.merged_state_dict(WEIGHTS, get_method(name, params))
    out = run_mergekit(base, experts, WEIGHTS, name, tmp_path / "out", params, exclude=exclude)
    theirs = load_file(str(out / "model.safetensors"))
    assert set(theirs) == set(ours) == set(base_sd)
    for tensor_name, tensor in ours.items():
        assert (tensor - theirs[tensor_name]).abs().max() <= 1e-6, tensor_name
        if exclude and tensor_name.startswith("model.vision_tower."):
            assert torch.equal(theirs[tensor_name], base_sd[tensor_name])


def test_yaml_is_a_valid_mergekit_configuration(checkpoints) -> None:
    base, experts, _ = checkpoints
    for name in ("linear", "task_arithmetic", "ties", "dare_ties", "dare_linear"):
        text = mergekit_yaml(base, experts, WEIGHTS, name)
        config = MergeConfiguration.model_validate(yaml.safe_load(text))
        assert config.merge_method == name
        assert (config.base_model is None) == (name == "linear")
        assert {str(m.model.model.path) for m in config.models} >= {str(e) for e in experts}


def test_yaml_carries_method_parameters_and_filters(checkpoints) -> None:
    base, experts, _ = checkpoints
    text = mergekit_yaml(base, experts, WEIGHTS, "ties", {"density": 0.3, "lambda": 0.9})
    data = yaml.safe_load(text)
    assert data["parameters"] == {
        "lambda": 0.9, "normalize": True, "rescale": False, "int8_mask": False
    }
    first = data["models"][0]["parameters"]
    assert first["density"] == 0.3
    assert first["weight"] == [{"filter": "model.vision_tower.", "value": 0.0}, {"value": 0.2}]
    plain = yaml.safe_load(mergekit_yaml(base, experts, WEIGHTS, "task_arithmetic", exclude=()))
    assert [m["parameters"]["weight"] for m in plain["models"]] == WEIGHTS


def test_include_patterns_become_filters(checkpoints, tmp_path) -> None:
    base, experts, base_sd = checkpoints
    include = ["model.layers.*"]
    bank = TaskVectorBank.from_checkpoints(base, experts, include=include)
    ours = bank.merged_state_dict(WEIGHTS, "linear")
    out = run_mergekit(base, experts, WEIGHTS, "linear", tmp_path / "out", include=include)
    theirs = load_file(str(out / "model.safetensors"))
    assert torch.equal(theirs["lm_head.weight"], base_sd["lm_head.weight"])
    for tensor_name, tensor in ours.items():
        assert (tensor - theirs[tensor_name]).abs().max() <= 1e-6, tensor_name


def test_globs_mergekit_cannot_express_are_refused(checkpoints) -> None:
    base, experts, _ = checkpoints
    with pytest.raises(MergeError, match="cannot be written as a mergekit filter"):
        mergekit_yaml(base, experts, WEIGHTS, "linear", exclude=["*.router.*"])


def test_bad_weights_are_refused_before_mergekit_runs(checkpoints) -> None:
    base, experts, _ = checkpoints
    with pytest.raises(MergeError, match="negative"):
        mergekit_yaml(base, experts, [0.5, -0.5, 1.0], "linear")
    with pytest.raises(MergeError, match="expected 3 weights, got 2"):
        mergekit_yaml(base, experts, [0.5, 0.5], "linear")


def test_dropped_tensors_raise() -> None:
    check_tensor_names({"a", "b"}, {"a", "b", "c"}, where="out")  # extra outputs are fine
    with pytest.raises(MergeError, match="missing: b") as caught:
        check_tensor_names({"a", "b"}, {"a"}, where="out")
    assert "--via dmo" in caught.value.hint


def test_mergekit_on_a_qwen2_vl_saved_by_transformers_5_is_refused_with_the_reason(tmp_path) -> None:
    """mergekit 0.1.5's qwen2_vl definition reads num_hidden_layers at the config's top level; transformers 5
    keeps it in text_config. The user gets that, and the way around it, not a hundred-line config dump."""
    from transformers import AutoModelForImageTextToText

    from hf_support import tiny_qwen2_vl

    base = tiny_qwen2_vl(tmp_path / "base")
    experts = []
    for index in range(2):
        model = AutoModelForImageTextToText.from_pretrained(str(base), local_files_only=True)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if not name.startswith("model.visual"):
                    parameter.add_(0.01 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(index)))
        model.save_pretrained(tmp_path / f"expert{index}")
        experts.append(tmp_path / f"expert{index}")
    with pytest.raises(MergeError) as caught:
        run_mergekit(base, experts, [0.3, 0.7], "task_arithmetic", tmp_path / "out", exclude=("model.visual.*",))
    message = caught.value.render()
    assert "the checkpoint's config has no attribute num_hidden_layers" in message
    assert "transformers 5" in message and len(message) < 600
    # dmo's own bank merges the same experts.
    bank = TaskVectorBank.from_checkpoints(base, experts)
    assert bank.num_experts == 2
