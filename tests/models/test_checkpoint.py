from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from dmo.errors import CheckpointError
from dmo.models import ModMLLMConfig, ModMLLMForCausalLM
from dmo.models.checkpoint import (
    MANIFEST_NAME,
    checkpoint_sha256,
    load_checkpoint,
    read_manifest,
    read_state_dict,
    save_checkpoint,
    verify_checkpoint,
)
from dmo.models.efficiency import probe_batch


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed: int = 0, **overrides) -> ModMLLMForCausalLM:
    settings = dict(
        vocab_size=64, image_size=8, patch_size=2, vision_hidden_size=16, vision_layers=1,
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    settings.update(overrides)
    torch.manual_seed(seed)
    model = ModMLLMForCausalLM(ModMLLMConfig(**settings)).eval()
    with torch.no_grad():  # non-zero routers so a lost router would show in the logits
        for layer in model.model.layers:
            if layer.router is not None:
                layer.router.weight.normal_()
    return model


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(["[PAD]", "[BOS]", "[EOS]", "<image>", "[UNK]", "red", "blue"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]")


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_save_then_load_gives_identical_logits(tmp_path):
    model = tiny_model()
    manifest = save_checkpoint(model, tmp_path / "ckpt", tokenizer=tiny_tokenizer(), extra_files={"notes/run.json": "{}"})
    assert {"config.json", "model.safetensors", "tokenizer.json", "notes/run.json"} <= set(manifest.files)
    assert manifest.total_sha256 == checkpoint_sha256(tmp_path / "ckpt") == read_manifest(tmp_path / "ckpt").total_sha256
    loaded = load_checkpoint(tmp_path / "ckpt")
    batch = probe_batch(model.config, 2, n_text=4)
    assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    assert loaded.config.mod_settings() == model.config.mod_settings()
    assert leftovers(tmp_path) == []


def test_read_state_dict_returns_every_tensor_without_a_model(tmp_path):
    model = tiny_model()
    save_checkpoint(model, tmp_path / "ckpt")
    state = read_state_dict(tmp_path / "ckpt")
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_tied_embeddings_survive_a_round_trip(tmp_path):
    model = tiny_model(tie_word_embeddings=True)
    save_checkpoint(model, tmp_path / "tied")
    loaded = load_checkpoint(tmp_path / "tied")
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_overwrite_replaces_the_old_checkpoint_and_changes_the_hash(tmp_path):
    save_checkpoint(tiny_model(seed=0), tmp_path / "ckpt")
    first = checkpoint_sha256(tmp_path / "ckpt")
    save_checkpoint(tiny_model(seed=1), tmp_path / "ckpt")
    assert checkpoint_sha256(tmp_path / "ckpt") != first
    verify_checkpoint(tmp_path / "ckpt")
    assert leftovers(tmp_path) == []


def test_tampered_weights_are_detected_naming_the_file(tmp_path):
    save_checkpoint(tiny_model(), tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors") as info:
        load_checkpoint(tmp_path / "ckpt")
    assert "sha256" in str(info.value)


def test_tampered_config_and_unlisted_files_are_detected(tmp_path):
    save_checkpoint(tiny_model(), tmp_path / "ckpt")
    config = tmp_path / "ckpt" / "config.json"
    payload = json.loads(config.read_text())
    payload["tanh_alpha"] = 0.5
    config.write_text(json.dumps(payload))
    with pytest.raises(CheckpointError, match="config.json"):
        verify_checkpoint(tmp_path / "ckpt")
    save_checkpoint(tiny_model(), tmp_path / "ckpt")
    (tmp_path / "ckpt" / "extra.txt").write_text("x")
    with pytest.raises(CheckpointError, match="extra.txt"):
        verify_checkpoint(tmp_path / "ckpt")


def test_truncated_weights_are_a_checkpoint_error_even_without_verification(tmp_path):
    save_checkpoint(tiny_model(), tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="model.safetensors") as info:
        read_state_dict(tmp_path / "ckpt", verify=False)
    assert "truncated" in str(info.value)


def test_pickle_files_are_refused_whatever_the_manifest_says(tmp_path):
    save_checkpoint(tiny_model(), tmp_path / "ckpt")
    torch.save({"x": torch.zeros(1)}, tmp_path / "ckpt" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="safetensors only"):
        load_checkpoint(tmp_path / "ckpt", verify=False)
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        read_state_dict(tmp_path / "ckpt")


def test_missing_manifest_or_directory_is_explained(tmp_path):
    save_checkpoint(tiny_model(), tmp_path / "ckpt")
    (tmp_path / "ckpt" / MANIFEST_NAME).unlink()
    with pytest.raises(CheckpointError, match=MANIFEST_NAME):
        load_checkpoint(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        load_checkpoint(tmp_path / "absent")


class SaveFailsHalfway(ModMLLMForCausalLM):
    """Writes its files, then fails, like a full disk at the last file."""

    def save_pretrained(self, save_directory, **kwargs):
        super().save_pretrained(save_directory, **kwargs)
        raise RuntimeError("disk full")


def test_failed_save_leaves_nothing_behind(tmp_path):
    broken = SaveFailsHalfway(tiny_model().config)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(broken, tmp_path / "ckpt")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_checkpoint(tmp_path):
    model = tiny_model()
    save_checkpoint(model, tmp_path / "ckpt")
    before = checkpoint_sha256(tmp_path / "ckpt")
    with pytest.raises(RuntimeError):
        save_checkpoint(SaveFailsHalfway(model.config), tmp_path / "ckpt")
    assert checkpoint_sha256(tmp_path / "ckpt") == before
    verify_checkpoint(tmp_path / "ckpt")
    assert leftovers(tmp_path) == []


def test_a_folder_that_is_not_a_checkpoint_is_never_replaced(tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(CheckpointError, match="not a dmo checkpoint"):
        save_checkpoint(tiny_model(), precious)
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert leftovers(tmp_path) == []


def test_extra_file_names_may_not_escape_the_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="bad extra file name"):
        save_checkpoint(tiny_model(), tmp_path / "ckpt", extra_files={"../evil.txt": "x"})
    assert list(tmp_path.iterdir()) == []
