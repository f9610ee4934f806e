"""`dmo merge`: a proxy checkpoint from_pretrained loads (by dmo or mergekit); bad input refused."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from dmo.cli import merge_cmd
from dmo.errors import MergeError
from dmo.merging import TaskVectorBank
from dmo.models import ModMLLMForCausalLM, register_auto
from dmo.models.checkpoint import read_state_dict, save_checkpoint, verify_checkpoint

# Mounted the way main.py mounts command areas.
root = typer.Typer()
root.add_typer(merge_cmd.app, name="merge")
runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, make_config, perturb):
    directory = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = ModMLLMForCausalLM(make_config())
    base_sd = perturb(model.state_dict(), 100, 0.02)
    model.load_state_dict(base_sd)
    save_checkpoint(model, directory / "base")
    experts = []
    for index in range(2):
        model.load_state_dict(perturb(base_sd, index))
        save_checkpoint(model, directory / f"e{index}")
        experts.append(directory / f"e{index}")
    return directory / "base", experts


def _invoke(*args: str):
    return runner.invoke(root, ["merge", *args], catch_exceptions=True)


@pytest.mark.parametrize("via", ["dmo", "mergekit"])
def test_writes_a_checkpoint_that_from_pretrained_loads(checkpoints, tmp_path, via) -> None:
    base, (e0, e1) = checkpoints
    out = tmp_path / "proxy"
    result = _invoke(
        "--experts", f"{e0},{e1}", "--base", str(base), "--weights", "0.25,0.75",
        "--out", str(out), "--via", via,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    verify_checkpoint(out)  # manifest written and consistent
    register_auto()
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(str(out))
    expected = TaskVectorBank.from_checkpoints(base, [e0, e1]).merged_state_dict([0.25, 0.75])
    state = loaded.state_dict()
    for name, tensor in expected.items():
        assert (state[name] - tensor).abs().max() <= 1e-6, name
    provenance = json.loads((out / "dmo_merge.json").read_text())
    assert provenance["via"] == via and provenance["weights"] == [0.25, 0.75]
    assert (out / "mergekit_config.yml").is_file()


def test_repeated_expert_flags_and_method_params(checkpoints, tmp_path) -> None:
    base, (e0, e1) = checkpoints
    out = tmp_path / "ties"
    result = _invoke(
        "-e", str(e0), "-e", str(e1), "--base", str(base), "-w", "0.5,0.5", "-o", str(out),
        "--method", "ties", "--param", "density=0.5", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["method"] == "ties"
    assert json.loads((out / "dmo_merge.json").read_text())["parameters"]["density"] == 0.5


def test_weights_must_sum_to_one_unless_normalized(checkpoints, tmp_path) -> None:
    base, (e0, e1) = checkpoints
    args = ["-e", f"{e0},{e1}", "--base", str(base), "-w", "1,3", "-o", str(tmp_path / "p")]
    result = _invoke(*args)
    assert isinstance(result.exception, MergeError) and "sum to 4" in result.exception.message
    assert _invoke(*args, "--normalize").exit_code == 0
    state = read_state_dict(tmp_path / "p")
    expected = TaskVectorBank.from_checkpoints(base, [e0, e1]).merged_state_dict([0.25, 0.75])
    assert torch.allclose(state["lm_head.weight"], expected["lm_head.weight"], atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "message"),
    [("0.5,0.5,0", "expected 2 weights, got 3"), ("1.5,-0.5", "non-negative"), ("nan,1", "NaN")],
)
def test_bad_weights_are_refused(checkpoints, tmp_path, weights, message) -> None:
    base, (e0, e1) = checkpoints
    out = str(tmp_path / "p")
    result = _invoke("-e", f"{e0},{e1}", "--base", str(base), "-w", weights, "-o", out)
    assert isinstance(result.exception, MergeError) and message in result.exception.message
    assert not (tmp_path / "p").exists()


def test_existing_output_needs_force(checkpoints, tmp_path) -> None:
    base, (e0, e1) = checkpoints
    args = ["-e", f"{e0},{e1}", "--base", str(base), "-w", "0.5,0.5", "-o", str(tmp_path / "p")]
    assert _invoke(*args).exit_code == 0
    again = _invoke(*args)
    assert isinstance(again.exception, MergeError) and "--force" in again.exception.hint
    assert _invoke(*args, "--force").exit_code == 0


@pytest.mark.parametrize("force", [False, True])
def test_an_output_that_is_not_a_directory_is_refused_before_merging(checkpoints, tmp_path, force) -> None:
    import os

    base, (e0, e1) = checkpoints
    fifo = tmp_path / "proxy"
    os.mkfifo(fifo)
    args = ["-e", f"{e0},{e1}", "--base", str(base), "-w", "0.5,0.5", "-o", str(fifo)]
    result = _invoke(*args, *(["--force"] if force else []))
    assert result.exit_code != 0
    assert "not a directory" in str(result.exception) and str(fifo) in result.exception.where
    assert fifo.is_fifo() and sorted(p.name for p in tmp_path.iterdir()) == ["proxy"]


def test_a_hugging_face_base_is_refused_with_the_way_to_merge_it(tmp_path) -> None:
    from hf_support import tiny_llava

    base = tiny_llava(tmp_path / "llava")
    out = tmp_path / "proxy"
    result = _invoke("-e", f"{base},{base}", "--base", str(base), "-w", "0.5,0.5", "-o", str(out))
    assert isinstance(result.exception, MergeError)
    assert "Hugging Face checkpoint" in str(result.exception) and "--format mergekit" in result.exception.hint
    assert not out.exists()


def test_unknown_method_lists_known_ones(checkpoints, tmp_path) -> None:
    base, (e0, e1) = checkpoints
    out = str(tmp_path / "p")
    args = ["-e", f"{e0},{e1}", "--base", str(base), "-w", "0.5,0.5", "-o", out, "-m", "slerp"]
    result = _invoke(*args)
    assert isinstance(result.exception, MergeError) and "task_arithmetic" in result.exception.hint


def test_the_base_tokenizer_travels_with_the_proxy(tmp_path, make_config) -> None:
    from dmo.data.tokenizer import load_tokenizer, train_tokenizer

    texts = ["what color is the square", "count the dots: 3"] * 4
    tokenizer = train_tokenizer(texts, vocab_size=300)
    model = ModMLLMForCausalLM(make_config(vocab_size=len(tokenizer)))
    save_checkpoint(model, tmp_path / "base", tokenizer=tokenizer)
    save_checkpoint(model, tmp_path / "e0", tokenizer=tokenizer)
    expert, base, out = (str(tmp_path / name) for name in ("e0", "base", "p"))
    result = _invoke("-e", expert, "--base", base, "-w", "1", "-o", out)
    assert result.exit_code == 0, result.output
    loaded = load_tokenizer(tmp_path / "p")
    assert loaded("count the dots: 3")["input_ids"] == tokenizer("count the dots: 3")["input_ids"]
