"""mergekit interop: our proxies equal mergekit's run_merge on the same checkpoints."""

from __future__ import annotations

from pathlib import Path

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


@pytest.fixture(scope="module")
def qwen2_vl(tmp_path_factory):
    """A tiny Qwen2-VL base and two full fine-tunes of it, saved by transformers (the files a user brings),
    changed everywhere, vision tower included, so an exclusion mergekit misses shows."""
    from transformers import AutoModelForImageTextToText

    from hf_support import tiny_qwen2_vl

    root = tmp_path_factory.mktemp("qwen2_vl")
    base = tiny_qwen2_vl(root / "base")
    experts = []
    for index in range(2):
        model = AutoModelForImageTextToText.from_pretrained(str(base), local_files_only=True)
        generator = torch.Generator().manual_seed(index)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(0.01 * torch.randn(parameter.shape, generator=generator))
        model.save_pretrained(root / f"expert{index}")
        experts.append(root / f"expert{index}")
    return base, experts


@pytest.mark.parametrize(("name", "params"), [("task_arithmetic", {}), ("linear", {})])
def test_mergekit_run_on_our_yaml_reproduces_the_qwen2_vl_proxy(qwen2_vl, tmp_path, name, params) -> None:
    """mergekit 0.1.5's qwen2_vl definition reads num_hidden_layers where transformers 5 no longer puts it;
    dmo runs mergekit with that one key corrected (mergekit_definitions), and the YAML's vision-tower filter
    is written against the file names (visual.*), not the loaded model's (model.visual.*)."""
    from dmo.models.backends import get_backend

    base, experts = qwen2_vl
    backend = get_backend("hf")
    exclude = backend.merge_exclude(base)
    assert exclude == ("model.visual.*",)
    text = mergekit_yaml(base, experts, [0.3, 0.7], name, params, exclude=exclude)
    assert "filter: visual." in text and "model.visual" not in text
    bank = TaskVectorBank.from_checkpoints(base, experts, backend=backend)
    ours = bank.merged_state_dict([0.3, 0.7], get_method(name, params))
    theirs = backend.state_dict(run_mergekit(base, experts, [0.3, 0.7], name, tmp_path / "out", params,
                                             exclude=exclude))
    base_state = backend.state_dict(base)
    assert set(theirs) == set(ours) == set(base_state)
    for tensor_name, tensor in ours.items():
        assert (tensor - theirs[tensor_name]).abs().max() <= 1e-6, tensor_name
        if tensor_name.startswith("model.visual."):
            assert torch.equal(theirs[tensor_name], base_state[tensor_name]), tensor_name


def test_routed_qwen2_vl_experts_are_refused_naming_their_routers(qwen2_vl, tmp_path) -> None:
    """mergekit's qwen2_vl definition has no router tensors: it would write the proxy without them."""
    from dmo.config import parse_config
    from dmo.data.prepared import prepare_data
    from dmo.models.backends import get_backend
    from hf_support import hf_project

    base, experts = qwen2_vl
    repo = Path(__file__).resolve().parents[2]
    config = parse_config(hf_project((repo / "configs" / "tiny.yaml").read_text(), base, tmp_path / "w"),
                          source="hf.yaml")
    backend = get_backend("hf")
    routed = tmp_path / "routed"
    backend.save(backend.initial_model(config, None, None, seed=0), routed, encoder=prepare_data(config).encoder,
                 extra_files={})
    with pytest.raises(MergeError) as caught:
        mergekit_yaml(base, [experts[0], routed], [0.5, 0.5], "task_arithmetic")
    message = caught.value.render()
    assert str(routed) in message and "router" in message
    assert "model.language_model.layers.1.router.bias" in message and "--via dmo" in message


def test_patterns_follow_the_checkpoint_s_file_names() -> None:
    from dmo.merging.mergekit_interop import on_disk

    files = {"visual.blocks.0.attn.qkv.weight", "model.layers.0.mlp.up_proj.weight"}
    assert on_disk("model.visual.*", files) == "visual.*"
    assert on_disk("model.layers.0.*", files) == "model.layers.0.*"  # present as it is
    assert on_disk("model.vision_tower.*", files) == "model.vision_tower.*"  # nowhere: left for the user to see
    assert on_disk("model.visual.*", set()) == "model.visual.*"  # no files to read (a YAML for paths elsewhere)


def test_the_qwen2_vl_definition_fix_is_scoped_to_one_merge() -> None:
    """The one place dmo changes a dependency's state: mergekit's registry entry, swapped and restored."""
    from mergekit.architecture import json_definitions

    from dmo.merging.mergekit_definitions import text_config_layers

    name = "Qwen2VLForConditionalGeneration"
    shipped = json_definitions.NAME_TO_ARCH[name]
    keys = lambda archs: {m.architecture.num_layers_config_key() for a in archs for m in a.modules.values()  # noqa: E731
                          if m.architecture.num_layers_config_key()}
    with text_config_layers():
        assert "text_config.num_hidden_layers" in keys(json_definitions.NAME_TO_ARCH[name])
        assert "num_hidden_layers" not in keys(json_definitions.NAME_TO_ARCH[name])
    assert json_definitions.NAME_TO_ARCH[name] is shipped
