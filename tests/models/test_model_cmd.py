from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from dmo.cli.model_cmd import app, model_info
from dmo.config.schema import DmoConfig, DomainSettings, ModMllmSettings, ModSettings, SyntheticSource
from dmo.models import ModMLLMConfig, ModMLLMForCausalLM
from dmo.models.checkpoint import save_checkpoint

DOMAINS = (DomainSettings(name="ocr", source=SyntheticSource(generator="ocr")),)


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_model_info_reports_the_default_model_against_dense():
    info = model_info(DmoConfig(domains=DOMAINS))
    assert info["vision_tokens"] == 64 and info["text_tokens"] == 16
    assert info["flops_ratio"] < 0.7
    assert info["kv_ratio"] == pytest.approx(400 / 640)
    assert info["mean_retention"] == pytest.approx(0.5375)
    assert [row["kept_vision"] for row in info["layers"]] == [64, 64, 51, 39, 24, 12, 9, 9]


def test_model_info_of_a_dense_model_saves_nothing():
    config = DmoConfig(domains=DOMAINS, model=ModMllmSettings(mod=ModSettings(schedule="dense")))
    info = model_info(config, n_text=10)
    assert info["flops_ratio"] == 1.0 and info["kv_ratio"] == 1.0


def test_info_command_prints_json(tmp_path):
    config_file = tmp_path / "project.yaml"
    config_file.write_text(
        "domains:\n  - name: ocr\n    source: {kind: synthetic, generator: ocr}\n"
        "model:\n  num_layers: 4\n  mod: {schedule: constant, constant: 0.5}\n"
    )
    result = CliRunner().invoke(app, ["info", "--config", str(config_file), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["mod"]["retention"] == [0.5] * 4
    assert [row["tokens"] for row in payload["layers"]] == [16 + 32] * 4
    table = CliRunner().invoke(app, ["info", "--config", str(config_file)])
    assert table.exit_code == 0 and "KV cache" in table.output


def test_arank_command_on_random_inputs(tmp_path):
    config = ModMLLMConfig(
        vocab_size=64, image_size=8, patch_size=2, vision_hidden_size=16, vision_layers=1,
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    save_checkpoint(ModMLLMForCausalLM(config), tmp_path / "ckpt")
    result = CliRunner().invoke(app, ["arank", str(tmp_path / "ckpt"), "--samples", "2", "--route", "1", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["inputs"] == "random" and payload["samples"] == 2
    assert len(payload["aranks"]) == 3 and all(value > 0 for value in payload["aranks"])
    assert len(payload["route"]) == 1


def test_arank_command_on_sharegpt_data_with_the_checkpoint_tokenizer(tmp_path):
    import numpy as np

    from dmo.data.sample import Sample
    from dmo.data.sharegpt import write_jsonl
    from dmo.data.tokenizer import IMAGE, train_tokenizer

    rng = np.random.default_rng(0)
    samples = [
        Sample(f"s{i}", "probe", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), f"what color is box {i}?", "red")
        for i in range(3)
    ]
    write_jsonl(samples, tmp_path / "data" / "dev.jsonl", image_dir="images")
    tokenizer = train_tokenizer([s.question + " " + s.answer for s in samples], vocab_size=300)
    config = ModMLLMConfig(
        vocab_size=len(tokenizer), image_size=8, patch_size=2, vision_hidden_size=16, vision_layers=1,
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE), pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    save_checkpoint(ModMLLMForCausalLM(config), tmp_path / "ckpt", tokenizer=tokenizer)
    args = ["arank", str(tmp_path / "ckpt"), "--data", str(tmp_path / "data"), "--samples", "2", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["inputs"] == str(tmp_path / "data") and payload["samples"] == 2
    assert len(payload["aranks"]) == 2
