"""The compatibility guard refuses experts that do not share the base (naming the mismatch)."""

from __future__ import annotations

import json

import pytest
import torch

from dmo.errors import MergeError
from dmo.merging import TaskVectorBank, check_checkpoints, check_state_dict
from dmo.models import ModMLLMForCausalLM
from dmo.models.checkpoint import read_manifest, save_checkpoint


def test_identical_layouts_pass(base_sd, expert_sds) -> None:
    check_state_dict(base_sd, expert_sds[0], expert="ocr")  # no error


def test_missing_tensor_is_named(base_sd, expert_sds) -> None:
    expert = {k: v for k, v in expert_sds[0].items() if k != "lm_head.weight"}
    with pytest.raises(MergeError, match="lm_head.weight") as caught:
        check_state_dict(base_sd, expert, expert="ocr")
    assert caught.value.where == "ocr" and "missing" in caught.value.message


def test_extra_tensor_is_named(base_sd, expert_sds) -> None:
    expert = {**expert_sds[0], "model.layers.0.router.weight": torch.zeros(1, 32)}
    assert "model.layers.0.router.weight" not in base_sd  # layer 0 is dense under PRD
    with pytest.raises(MergeError, match=r"model\.layers\.0\.router\.weight"):
        check_state_dict(base_sd, expert, expert="ocr")


def test_shape_mismatch_says_expected_and_got(base_sd, expert_sds) -> None:
    expert = dict(expert_sds[0])
    expert["model.norm.weight"] = torch.ones(31)
    with pytest.raises(MergeError) as caught:
        check_state_dict(base_sd, expert, expert="chart")
    assert "model.norm.weight" in caught.value.message
    assert "expected (32,), got (31,)" in caught.value.message


def test_dtype_mismatch_says_expected_and_got(base_sd, expert_sds) -> None:
    expert = dict(expert_sds[0])
    expert["model.norm.weight"] = expert["model.norm.weight"].to(torch.bfloat16)
    with pytest.raises(MergeError, match="dtype expected float32, got bfloat16"):
        check_state_dict(base_sd, expert, expert="chart")


def test_bank_refuses_a_mismatched_expert(base_sd, expert_sds) -> None:
    expert = dict(expert_sds[1])
    expert["lm_head.weight"] = torch.zeros(10, 32)
    with pytest.raises(MergeError, match="lm_head.weight") as caught:
        TaskVectorBank.from_state_dicts(
            base_sd, [expert_sds[0], expert], expert_names=["vqa", "ocr"]
        )
    assert caught.value.where == "ocr"


def _save(model, directory, summary=None):
    extra = {"dmo_training.json": json.dumps(summary)} if summary is not None else None
    save_checkpoint(model, directory, extra_files=extra)
    return directory


def test_checkpoints_with_other_mod_settings_are_refused(tmp_path, make_config) -> None:
    base = _save(ModMLLMForCausalLM(make_config()), tmp_path / "base")
    constant = make_config(mod_schedule="constant", mod_constant=0.5)
    other = _save(ModMLLMForCausalLM(constant), tmp_path / "other")
    with pytest.raises(MergeError) as caught:
        check_checkpoints(base, [other])
    assert caught.value.message.startswith("MoD setting")
    assert caught.value.where == str(other)


def test_checkpoints_with_other_tanh_settings_are_refused(tmp_path, make_config) -> None:
    base = _save(ModMLLMForCausalLM(make_config()), tmp_path / "base")
    other = _save(ModMLLMForCausalLM(make_config(tanh_alpha=0.3)), tmp_path / "other")
    with pytest.raises(MergeError, match="MoD setting tanh_alpha: expected 0.2, got 0.3"):
        check_checkpoints(base, [other])


def test_checkpoints_with_other_config_are_refused(tmp_path, make_config) -> None:
    base = _save(ModMLLMForCausalLM(make_config()), tmp_path / "base")
    other = _save(ModMLLMForCausalLM(make_config(rope_theta=500.0)), tmp_path / "other")
    with pytest.raises(MergeError, match="config setting rope_theta: expected 10000.0, got 500.0"):
        check_checkpoints(base, [other])


def test_experts_of_another_base_are_refused_by_fingerprint(tmp_path, make_config) -> None:
    model = ModMLLMForCausalLM(make_config())
    base = _save(model, tmp_path / "base")
    fingerprint = read_manifest(base).total_sha256
    good = _save(model, tmp_path / "good", summary={"base_sha256": fingerprint})
    bad = _save(model, tmp_path / "bad", summary={"base_sha256": "f" * 64})
    check_checkpoints(base, [good])  # no error
    with pytest.raises(MergeError, match="trained from base ffffffffffff") as caught:
        check_checkpoints(base, [good, bad])
    assert caught.value.where == str(bad)


def test_a_base_re_made_with_the_same_weights_keeps_its_experts(tmp_path, make_config) -> None:
    # Re-making a base rewrites its training record (a new training key); its experts must still merge.
    model = ModMLLMForCausalLM(make_config())
    base = _save(model, tmp_path / "base", summary={"cache_key": "a"})
    recorded = read_manifest(base).model_sha256
    expert = _save(model, tmp_path / "expert", summary={"base_sha256": recorded})
    legacy = _save(model, tmp_path / "legacy", summary={"base_sha256": read_manifest(base).total_sha256})
    check_checkpoints(base, [expert, legacy])  # today's fingerprint, and the whole-checkpoint one before it

    remade = _save(model, tmp_path / "remade", summary={"cache_key": "b"})
    assert read_manifest(remade).total_sha256 != read_manifest(base).total_sha256
    assert read_manifest(remade).model_sha256 == recorded
    check_checkpoints(remade, [expert])  # no error

    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    other = _save(model, tmp_path / "other", summary={"cache_key": "a"})
    with pytest.raises(MergeError, match="trained from base"):
        check_checkpoints(other, [expert])  # other weights are another base, whatever the records say
