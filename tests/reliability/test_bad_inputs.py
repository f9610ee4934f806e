"""A catalogue of bad inputs, each driven through the real `dmo` command line.

Every case asserts the same contract: a non-zero exit, no traceback, and a message that
names what was wrong and where (file and line, field, flag or argument). Most run
`dmo.cli.main.main` in this process (the entry point the `dmo` script calls, with its
error handling); the password case runs the installed script as a subprocess, so that
log lines are caught too. docs/reliability.md lists where each case is also tested at
library level.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from reliability_support import REPO

ROOTS = ("dmo", "workers", "storage")


# --------------------------------------------------------------------------- weights

WEIGHT_COMMANDS = {
    # dmo merge validates before reading any checkpoint; train mixture before opening the store.
    "merge": lambda w, cfg, tmp: ["merge", "--base", tmp / "b", "--experts", f"{tmp / 'e0'},{tmp / 'e1'},{tmp / 'e2'}",
                                  f"--weights={w}", "--out", tmp / "out"],
    "train-mixture": lambda w, cfg, tmp: ["train", "mixture", f"--weights={w}", "--config", cfg],
}


@pytest.mark.parametrize("command", WEIGHT_COMMANDS)
def test_negative_weight(dmo, tiny_yaml, tmp_path, command):
    dmo(*WEIGHT_COMMANDS[command]("-0.5,1.0,0.5", tiny_yaml, tmp_path)).refused("--weights", "negative")


@pytest.mark.parametrize("command", WEIGHT_COMMANDS)
def test_nan_weight(dmo, tiny_yaml, tmp_path, command):
    result = dmo(*WEIGHT_COMMANDS[command]("nan,0.5,0.5", tiny_yaml, tmp_path))
    result.refused("--weights")
    assert re.search(r"nan|NaN|finite", result.err)


@pytest.mark.parametrize("command", WEIGHT_COMMANDS)
def test_weights_not_summing_to_one(dmo, tiny_yaml, tmp_path, command):
    dmo(*WEIGHT_COMMANDS[command]("0.5,0.5,0.5", tiny_yaml, tmp_path)).refused("--weights", "sum to 1.5", "not 1")


WRONG_LENGTH = {
    "merge": ("expected 3 weights, got 2", "e0, e1, e2"),
    "train-mixture": ("expected 3 weights, got 2", "general, ocr, counting"),
}


@pytest.mark.parametrize("command", WEIGHT_COMMANDS)
def test_wrong_number_of_weights(dmo, tiny_yaml, tmp_path, command):
    dmo(*WEIGHT_COMMANDS[command]("0.5,0.5", tiny_yaml, tmp_path)).refused("--weights", *WRONG_LENGTH[command])


def test_weights_are_renormalised_only_under_the_explicit_flag(dmo, checkpoints, tmp_path):
    base, experts = checkpoints["base"], [checkpoints["e0"], checkpoints["e1"]]
    args = ["merge", "--base", base, "--experts", ",".join(map(str, experts)), "--weights", "1,3", "--json"]
    dmo(*args, "--out", tmp_path / "refused").refused("--weights", "sum to 4", "--normalize")
    assert not (tmp_path / "refused").exists()
    accepted = dmo(*args, "--out", tmp_path / "proxy", "--normalize")
    assert accepted.code == 0, accepted.err
    assert json.loads(accepted.out)["weights"] == [0.25, 0.75]


@pytest.mark.slow
def test_train_mixture_renormalises_only_under_the_explicit_flag(dmo, tiny_yaml):
    args = ["train", "mixture", "--weights", "1,1,2", "--config", tiny_yaml, "--json"]
    dmo(*args).refused("--weights", "sum to 4", "--normalize")
    assert not (tiny_yaml.parent / "workdir" / "models").exists(), "refused before anything was trained"
    trained = dmo(*args, "--normalize")
    assert trained.code == 0, trained.err
    row = json.loads(trained.out)
    assert row["kind"] == "mixture" and Path(row["checkpoint"]).name.startswith("mixture-0.250-0.250-0.500-")


# --------------------------------------------------------------------------- configs


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


DOMAIN = "  - name: {name}\n    source: {{kind: synthetic, generator: {generator}}}\n"


def test_config_typo_names_file_line_and_field(dmo, tmp_path):
    path = _config(tmp_path, DOMAIN.format(name="ocr", generator="ocr").join(["domains:\n", "    sizez: {train: 3}\n"]))
    dmo("config", "validate", path).refused("bad.yaml:4", "domains[0].sizez")


def test_unknown_domain_generator_in_config(dmo, tmp_path):
    path = _config(tmp_path, "domains:\n" + DOMAIN.format(name="ocr", generator="ocr") + DOMAIN.format(name="maps", generator="maps"))
    dmo("config", "validate", path).refused("bad.yaml:5", "domains[1].source.generator", "'general', 'ocr', 'digit', 'counting', 'counting_among', 'chart', 'video_count', 'video_motion' or 'video_change'")


def test_duplicate_domain_in_config(dmo, tmp_path):
    path = _config(tmp_path, "project: {name: x}\ndomains:\n" + DOMAIN.format(name="ocr", generator="ocr") * 2)
    dmo("config", "validate", path).refused("bad.yaml:2", "field 'domains'", "duplicate domain names: ocr", "domains[1]")


@pytest.mark.parametrize(("setting", "line", "field", "name"), [
    ("  sampler: tpe\n", "  sampler: foo\n", "search.sampler", "unknown sampler 'foo'"),
    ("  sampler: tpe\n", "  sampler: tpe\n  merge: {method: tiess}\n", "search.merge.method",
     "unknown merge method 'tiess'"),
])
def test_config_validate_refuses_unknown_registry_names_with_file_line_and_field(dmo, tmp_path, setting, line,
                                                                                  field, name):
    text = (REPO / "configs" / "tiny.yaml").read_text()
    assert setting in text
    path = _config(tmp_path, text.replace(setting, line))
    number = text.replace(setting, line).splitlines().index(line.splitlines()[-1]) + 1
    dmo("config", "validate", path).refused(f"bad.yaml:{number}", field, name)


def test_unknown_domain_argument(dmo, tiny_yaml):
    dmo("train", "expert", "maps", "--config", tiny_yaml).refused("DOMAIN", "unknown domain 'maps'", "general, ocr, counting")


# --------------------------------------------------------------------------- data files


@pytest.fixture()
def jsonl_project(tmp_path):
    """A project with one synthetic and one user JSONL domain (2 samples per split)."""
    folder = tmp_path / "mine"
    (folder / "img").mkdir(parents=True)
    for split in ("train", "dev", "test"):
        lines = []
        for i in range(2):
            image = folder / "img" / f"{split}{i}.png"
            Image.fromarray(np.full((32, 32, 3), 40 * i, dtype=np.uint8)).save(image)
            lines.append(json.dumps({"messages": [{"role": "user", "content": "<image>What colour?"},
                                                  {"role": "assistant", "content": f"c{i}"}],
                                     "images": [f"img/{image.name}"]}))
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    data = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    data["project"]["workdir"] = str(tmp_path / "workdir")
    data["domains"] = [data["domains"][1], {"name": "mine", "source": {"kind": "jsonl", **{s: f"mine/{s}.jsonl" for s in ("train", "dev", "test")}}}]
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, folder


def test_empty_domain_file(dmo, jsonl_project):
    path, folder = jsonl_project
    (folder / "dev.jsonl").write_text("")
    dmo("train", "base", "--config", path).refused(f"{folder / 'dev.jsonl'}", "no samples")


def test_malformed_jsonl_line(dmo, jsonl_project):
    path, folder = jsonl_project
    train = folder / "train.jsonl"
    train.write_text(train.read_text() + '{"messages": [\n')
    dmo("train", "base", "--config", path).refused(f"{train}:3", "malformed JSON")


def test_missing_image(dmo, jsonl_project):
    path, folder = jsonl_project
    (folder / "img" / "train1.png").unlink()
    dmo("train", "base", "--config", path).refused(f"{folder / 'train.jsonl'}:2", "image not found", "train1.png")


def test_undecodable_image(dmo, jsonl_project):
    path, folder = jsonl_project
    (folder / "img" / "train0.png").write_bytes(b"not a png")
    dmo("train", "base", "--config", path).refused(f"{folder / 'train.jsonl'}:1", "cannot decode image", "train0.png")


# --------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A base, experts that record it, and experts of another shape and of another base."""
    from dmo.models import ModMLLMConfig, ModMLLMForCausalLM
    from dmo.models.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("checkpoints")
    shape = dict(vocab_size=64, image_size=8, patch_size=4, vision_hidden_size=16, vision_layers=1, vision_heads=2,
                 hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48, max_position_embeddings=64)

    def model(seed: int, **overrides) -> ModMLLMForCausalLM:
        torch.manual_seed(seed)
        return ModMLLMForCausalLM(ModMLLMConfig(**(shape | overrides)))

    paths = {name: folder / name for name in ("base", "e0", "e1", "wide", "stranger")}
    fingerprint = save_checkpoint(model(0), paths["base"]).total_sha256
    for name, seed, overrides, recorded in (("e0", 1, {}, fingerprint), ("e1", 2, {}, fingerprint),
                                             ("wide", 3, {"intermediate_size": 64}, fingerprint),
                                             ("stranger", 4, {}, "f" * 64)):
        summary = json.dumps({"base_sha256": recorded})
        save_checkpoint(model(seed, **overrides), paths[name], extra_files={"dmo_training.json": summary})
    return paths


def _merge(dmo, base: Path, experts: list[Path], out: Path):
    return dmo("merge", "--base", base, "--experts", ",".join(map(str, experts)), "--weights", "0.5,0.5", "--out", out)


def test_expert_of_another_shape(dmo, checkpoints, tmp_path):
    result = _merge(dmo, checkpoints["base"], [checkpoints["e0"], checkpoints["wide"]], tmp_path / "out")
    result.refused(str(checkpoints["wide"]), "intermediate_size")
    assert not (tmp_path / "out").exists()


def test_expert_of_another_base(dmo, checkpoints, tmp_path):
    result = _merge(dmo, checkpoints["base"], [checkpoints["e0"], checkpoints["stranger"]], tmp_path / "out")
    result.refused(str(checkpoints["stranger"]), "not from this base")
    assert not (tmp_path / "out").exists()


def _copy(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("via", ["dmo", "mergekit"])
def test_truncated_safetensors(dmo, checkpoints, tmp_path, via):
    expert = _copy(checkpoints["e1"], tmp_path / "e1")
    weights = expert / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = dmo("merge", "--base", checkpoints["base"], "--experts", f"{checkpoints['e0']},{expert}", "--weights", "0.5,0.5",
                 "--out", tmp_path / "out", "--via", via)
    result.refused(str(weights), "truncated")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("via", ["dmo", "mergekit"])
def test_pickle_checkpoint_is_refused(dmo, checkpoints, tmp_path, via):
    expert = _copy(checkpoints["e1"], tmp_path / "e1")
    torch.save({"weights": torch.zeros(2)}, expert / "pytorch_model.bin")
    result = dmo("merge", "--base", checkpoints["base"], "--experts", f"{checkpoints['e0']},{expert}", "--weights", "0.5,0.5",
                 "--out", tmp_path / "out", "--via", via)
    result.refused(str(expert / "pytorch_model.bin"), "pickle", "safetensors only")
    assert not (tmp_path / "out").exists()


def test_every_torch_load_is_weights_only():
    """Static check of the whole code base: no torch.load can unpickle arbitrary objects."""
    calls = []
    for root in ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for match in re.finditer(r"torch\.load\(", text):
                end = text.index("\n", match.end()) if "\n" in text[match.end():] else len(text)
                calls.append((f"{path.relative_to(REPO)}:{text.count(chr(10), 0, match.start()) + 1}", text[match.start():end]))
            assert "pickle.load" not in text, path
    assert calls, "the optimiser state is read with torch.load somewhere"
    unsafe = [where for where, call in calls if "weights_only=True" not in call]
    assert not unsafe, unsafe


# --------------------------------------------------------------------------- export and store


def test_export_to_an_existing_path_needs_force(dmo, searched_store, tiny_yaml, tmp_path):
    out = tmp_path / "recipe.json"
    out.write_text("keep me")
    args = ["export", "1", "--format", "json", "-o", out, "--budget", "100", "--config", tiny_yaml, "--store-url", searched_store]
    dmo(*args).refused(str(out), "exists", "--force")
    assert out.read_text() == "keep me"
    forced = dmo(*args, "--force")
    assert forced.code == 0, forced.err
    assert json.loads(out.read_text())["counts"] == {"general": 50, "ocr": 25, "counting": 25}


def test_database_password_is_masked_in_every_message_and_log(dmo, tmp_path, caplog):
    import logging

    secret = "s3cret-pw"
    url = f"postgresql://alice:{secret}@127.0.0.1:1/dmo"
    caplog.set_level(logging.WARNING, logger="dmo.storage")
    for args in (["searches", "--url", url, "--retry-s", "0.5"], ["db", "upgrade", "--url", url, "--retry-s", "0.5"]):
        dmo(*args).refused("alice:***@127.0.0.1:1/dmo", "Connection refused", code=3)
    assert caplog.records, "the retries were logged"
    assert all("alice:***@" in r.getMessage() and secret not in r.getMessage() for r in caplog.records)

    # The installed script end to end: its stderr carries the retry warnings too.
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "DMO_STORE_URL": url}
    script = Path(sys.executable).parent / "dmo"
    result = subprocess.run([str(script), "searches", "--retry-s", "0.5"], env=env, capture_output=True,
                            text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 3 and "Traceback" not in output, output[-2000:]
    assert secret not in output and "alice:***@127.0.0.1:1/dmo" in output and "retrying" in output, output
