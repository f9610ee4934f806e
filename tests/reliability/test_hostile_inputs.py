"""The second round of the bad-input catalogue (docs/reliability.md): what a hostile new user found.

Each test runs the real CLI entry point (in this process, or as a subprocess where a signal, a
resource limit or a second process is part of the defect) and asserts the exit code of the table
in dmo.errors, a message naming what and where, no traceback, and nothing left behind.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from reliability_support import REPO

from dmo.cli.submit import job_entrypoint

# --------------------------------------------------------------------------- 1. special files


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_export_refuses_a_target_that_is_not_a_regular_file_even_with_force(dmo, searched_store, tiny_yaml, tmp_path,
                                                                            kind):
    target = tmp_path / "full"
    holder = None
    if kind == "fifo":
        os.mkfifo(target)
    else:
        holder = socket.socket(socket.AF_UNIX)
        holder.bind(str(target))
    for fmt in ("json", "llamafactory"):
        dmo("export", "1", "-f", fmt, "-o", target, "--force", "--store-url", searched_store, "-c", tiny_yaml,
            "--budget", "10").refused(str(target), f"is a {'FIFO' if kind == 'fifo' else 'socket'}")
    assert stat.S_ISFIFO(os.lstat(target).st_mode) if kind == "fifo" else stat.S_ISSOCK(os.lstat(target).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "workdir") == ["full", "store.sqlite", "tiny.yaml"]
    if holder:
        holder.close()


# --------------------------------------------------------------------------- 3. ids never become paths


def _user_project(tmp_path: Path, train_lines: list[dict]) -> Path:
    folder = tmp_path / "mine"
    (folder / "img").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(folder / "img" / "a.png")
    ok = {"messages": [{"role": "user", "content": "<image>what?"}, {"role": "assistant", "content": "x"}],
          "images": ["img/a.png"]}
    for split, lines in (("train", train_lines), ("dev", [ok]), ("test", [ok])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    data = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    data["project"]["workdir"] = str(tmp_path / "workdir")
    data["domains"] = [data["domains"][1], {"name": "mine", "source": {
        "kind": "jsonl", **{s: f"mine/{s}.jsonl" for s in ("train", "dev", "test")}}}]
    path = tmp_path / "project.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _sample(uid: str | None = None, question: str = "what?") -> dict:
    record = {"messages": [{"role": "user", "content": f"<image>{question}"}, {"role": "assistant", "content": "x"}],
              "images": ["img/a.png"]}
    return record if uid is None else {"id": uid, **record}


def test_an_id_never_writes_outside_the_output_folder(dmo, tmp_path):
    project = _user_project(tmp_path, [_sample("../../../../outside/evil"), _sample("x/y"), _sample("fine")])
    out = tmp_path / "data"
    result = dmo("data", "generate", "-c", project, "--out", out)
    assert result.code == 0, result.err
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")}
    assert all(name.startswith(("mine/", "data/")) for name in written), written
    assert not (tmp_path.parent / "outside").exists() and not list(tmp_path.rglob("*.tmp"))
    records = [json.loads(line) for line in (out / "mine" / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["../../../../outside/evil", "x/y", "fine"]  # ids kept, never paths
    assert len({r["images"][0] for r in records}) == 3 and all(".." not in r["images"][0] for r in records)


def test_two_samples_with_one_id_are_refused_with_the_line(dmo, tmp_path):
    project = _user_project(tmp_path, [_sample("dup"), _sample("other"), _sample("dup")])
    dmo("data", "generate", "-c", project, "--out", tmp_path / "data").refused(
        f"{tmp_path / 'mine' / 'train.jsonl'}:3", "id 'dup' is used twice (first on line 1)")


# --------------------------------------------------------------------------- 4. usage errors and exit codes


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["best", "--top", "0"], "Invalid value for '--top'"),
        (["export", "1", "-f", "json", "-o", "x.json", "--budget", "0"], "Invalid value for '--budget'"),
        (["searches", "--bogus"], "No such option: --bogus"),
        (["foo"], "No such command 'foo'"),
        (["search", "status", "abc"], "Invalid value for 'ID'"),
        (["eval"], "Missing argument 'CHECKPOINT'"),
        (["merge", "--via", "foo", "--base", "b", "--experts", "e", "--weights", "1", "--out", "o"], "Invalid value for '--via'"),
        (["dashboard", "--port", "70000"], "Invalid value for '--port'"),
        (["export", "1", "-o", "x"], "Missing option '--format'"),
    ],
)
def test_usage_errors_exit_2_with_the_usage_and_no_traceback(dmo, tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    result = dmo(*args)
    assert result.code == 2 and "Traceback" not in result.out + result.err
    assert fragment in " ".join(result.err.split())
    assert list(tmp_path.iterdir()) == []  # nothing created on the way


def test_version_prints_the_version(dmo):
    from importlib.metadata import version

    result = dmo("--version")
    assert result.code == 0 and result.out.strip() == f"dmo {version('dmo')}"


def test_a_port_in_use_is_a_usage_error(dmo, searched_store):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        dmo("dashboard", "--port", str(port), "--store-url", searched_store).refused(f"port {port} on 127.0.0.1 is in use")


def test_ctrl_c_during_eval_exits_130(dmo, monkeypatch, tmp_path):
    import dmo.cli.train_cmd as train_cmd

    def interrupted(*args, **kwargs):  # Ctrl-C, delivered where eval spends its time
        raise KeyboardInterrupt

    monkeypatch.setattr("dmo.models.backends.backend_of_checkpoint", interrupted)
    assert train_cmd  # the command imports backend_of_checkpoint when it runs, so the patch is what it calls
    result = dmo("eval", tmp_path, "-c", REPO / "configs" / "tiny.yaml")
    assert result.code == 130 and "interrupted" in result.err and "Traceback" not in result.err


# --------------------------------------------------------------------------- 5. long prompts


def test_a_question_longer_than_the_context_names_file_line_and_the_limit(dmo, tmp_path):
    project = _user_project(tmp_path, [_sample("short"), _sample("long", "why " * 90)])
    dmo("train", "base", "-c", project).refused(f"{tmp_path / 'mine' / 'train.jsonl'}:2", "too long",
                                                "max_position_embeddings", "raise model.max_position_embeddings")


@pytest.mark.slow
def test_a_10_mb_line_is_refused_at_once_in_bounded_memory(tmp_path):
    project = _user_project(tmp_path, [_sample("ok"), _sample("huge", "x" * 10_000_000)])
    limit = 6 << 30  # address space: torch's import reserves much of it; tokenizing 10 MB needed 2.4 GB more

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "dmo", "train", "base", "-c", str(project)], capture_output=True,
                          text=True, timeout=120, preexec_fn=cap)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    flat = " ".join(done.stderr.split())
    assert f"{tmp_path / 'mine' / 'train.jsonl'}:2" in flat and "characters" in flat


# --------------------------------------------------------------------------- 7. eval uses the checkpoint's tokenizer


def test_eval_scores_a_checkpoint_with_its_own_tokenizer_whatever_the_config(dmo, tmp_path):
    """The defect: a checkpoint scored with another project's tokenizer (its ids still inside the
    model's vocabulary) got wrong scores and exit 0. Now its own tokenizer is used."""
    from dmo.config import load_config
    from dmo.data import load_domains
    from dmo.data.prepared import PreparedData, prepare_data
    from dmo.data.tokenizer import load_tokenizer
    from dmo.evaluation import benchmarks_for, evaluate
    from dmo.models.backends import get_backend
    from dmo.models.backends.mod_mllm import ProjectTokenizerEncoder
    from dmo.models.checkpoint import load_checkpoint
    from dmo.training.jobs import base_spec, ensure_model
    from reliability_support import small_project, write_yaml
    from storage import Store

    project = small_project(tmp_path / "work")
    project["tokenizer"] = {"vocab_size": 320}  # merges beyond the byte alphabet: ids the 256 one never makes
    trained_with = load_config(write_yaml(tmp_path / "project.yaml", project))
    with Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        checkpoint = Path(ensure_model(trained_with, store, base_spec(trained_with)).checkpoint_uri)
    project["tokenizer"] = {"vocab_size": 256}  # the same data, another project's tokenizer
    other_path = write_yaml(tmp_path / "other.yaml", project)
    shown = dmo("eval", checkpoint, "-c", other_path, "--json")
    assert shown.code == 0, shown.err
    config, model = load_config(other_path), load_checkpoint(checkpoint)

    def score(data: PreparedData) -> dict:
        return evaluate(model, data, benchmarks_for(data.names, "dev"), backend=get_backend("mod_mllm"),
                        max_new_tokens=config.evaluation.max_new_tokens).to_dict()

    own = PreparedData(load_domains(config), ProjectTokenizerEncoder(load_tokenizer(checkpoint),
                                                                     model.config.num_image_tokens))
    assert json.loads(shown.out) == score(own)  # the checkpoint's own tokenizer over the config's data
    assert score(prepare_data(config)) != score(own)  # what the config's tokenizer gave: wrong, silently


def test_eval_of_a_checkpoint_made_for_other_images_is_refused(dmo, trained_project, tmp_path):
    from storage import Store

    with Store.open_existing(trained_project.store_url) as store:
        expert = next(m for m in store.list_models(kind="expert"))
    other = yaml.safe_load(trained_project.yaml_path.read_text())
    other["model"]["image_size"] = 64
    other_path = tmp_path / "other.yaml"
    other_path.write_text(yaml.safe_dump(other))
    dmo("eval", expert.checkpoint_uri, "-c", other_path).refused("32-pixel images", "64-pixel", "-c CONFIG")


# --------------------------------------------------------------------------- 8. a full disk


@pytest.mark.slow
def test_export_on_a_full_disk_reports_it_and_leaves_nothing(searched_store, tiny_yaml, tmp_path):
    limit = 256 << 10  # RLIMIT_FSIZE: writes past 256 KiB fail with EFBIG, as a full disk would
    memory = 6 << 30  # address space, as for the 10 MB line: a billion samples must stream, not be listed

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    out = tmp_path / "exports"
    out.mkdir()
    for fmt in ("llamafactory", "jsonl"):
        done = subprocess.run([sys.executable, "-m", "dmo", "export", "1", "-f", fmt, "-o", str(out / fmt),
                               "--budget", "1000000000", "--store-url", searched_store, "-c", str(tiny_yaml)],
                              capture_output=True, text=True, timeout=300, preexec_fn=cap)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert "File too large" in " ".join(done.stderr.split())
    assert list(out.iterdir()) == []  # no .tmp file, no data/ folder, no image left behind


# --------------------------------------------------------------------------- 9. configs


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("image_size: 32", "image_size: 1000000000", "model.image_size"),
        ("image_size: 32\n  patch_size: 8", "image_size: 1024\n  patch_size: 1", "leave no room for text"),
        ("domains:", "training:\n  base: {steps: 1, lr: 0.1}\ndomains:", "given twice"),
    ],
)
def test_config_validate_refuses_what_other_commands_would(dmo, tmp_path, old, new, fragment):
    text = (REPO / "configs" / "tiny.yaml").read_text()
    assert old in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    dmo("config", "validate", path).refused(str(path), fragment)


def test_a_config_whose_images_would_not_fit_in_memory_is_refused(dmo, tmp_path):
    text = (REPO / "configs" / "demo.yaml").read_text().replace("image_size: 32\n  patch_size: 8", "image_size: 1024\n  patch_size: 128")
    path = tmp_path / "huge.yaml"
    path.write_text(text)
    dmo("config", "validate", path).refused("GiB as images", "at most 4 GiB")


# --------------------------------------------------------------------------- 10. square brackets


def test_messages_keep_their_square_brackets(dmo, tmp_path):
    path = tmp_path / "neg[red]steps.yaml"
    text = (REPO / "configs" / "tiny.yaml").read_text().replace("name: ocr\n", "name: OCR!\n")
    path.write_text(text)
    result = dmo("config", "validate", path)
    result.refused("neg[red]steps.yaml", "must match [a-z][a-z0-9_]*")
    assert "Tuple should have" not in result.err


# --------------------------------------------------------------------------- 11. search submit


def test_submit_to_an_unreachable_cluster_is_a_clear_error_and_leaves_no_staging(dmo, tiny_yaml, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    dmo("search", "submit", tiny_yaml, "--address", "http://127.0.0.1:1", "--store-url",
        "postgresql+psycopg://u:pw@127.0.0.1/db").refused("http://127.0.0.1:1", "cannot reach the Ray dashboard")
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_job_command_is_quoted_and_carries_no_store_url():
    command = job_entrypoint(trials=3, sampler="tpe; rm -rf ~", ray_address="127.0.0.1:6379")
    assert command == "dmo search run config.yaml --json --trials 3 --sampler 'tpe; rm -rf ~' --address 127.0.0.1:6379"
    assert "store" not in command


def test_losing_the_cluster_while_following_a_job_names_the_job_instead_of_a_traceback():
    """Ray's job client speaks HTTP through requests: a dashboard gone after the submission raises
    requests' ConnectionError (an OSError), which must become the job to look up later."""
    import requests

    from dmo.cli.submit import _asked
    from dmo.errors import DmoError

    with pytest.raises(DmoError) as caught:
        _asked("http://127.0.0.1:1", "raysubmit_42", lambda: requests.get("http://127.0.0.1:1", timeout=5))
    assert "lost the cluster while following job raysubmit_42" in caught.value.render()
    assert "ray job status raysubmit_42" in caught.value.render()

    def times_out() -> None:
        raise TimeoutError  # no message at all

    with pytest.raises(DmoError, match="following job raysubmit_42: TimeoutError"):
        _asked("http://127.0.0.1:1", "raysubmit_42", times_out)


def test_a_head_whose_job_agent_never_starts_is_retried_then_named_with_its_likely_cause(monkeypatch):
    """A head answers "No available agent" while its agent starts; one whose agent never binds its port
    (another Ray on the head holds 52365) answers it for ever: retried, then an error that says why."""
    from dmo.cli import submit
    from dmo.errors import DmoError

    class AgentlessHead:
        calls = 0

        def submit_job(self, **job):
            self.calls += 1
            raise RuntimeError("Request failed with status code 500: No available agent to submit job, please try "
                               "again later.")

    head = AgentlessHead()
    monkeypatch.setattr(submit, "AGENT_WAIT_S", 0.05)
    monkeypatch.setattr(submit, "POLL_S", 0.01)
    with pytest.raises(DmoError) as caught:
        submit._submit(head, "http://127.0.0.1:8265", entrypoint="dmo search run config.yaml")
    assert head.calls >= 2
    assert "No available agent" in caught.value.render() and "52365" in caught.value.hint


# --------------------------------------------------------------------------- 12. file modes


def test_every_file_of_a_checkpoint_gets_the_same_mode(tmp_path):
    import torch

    from dmo.models import ModMLLMConfig, ModMLLMForCausalLM
    from dmo.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = ModMLLMForCausalLM(ModMLLMConfig(vocab_size=64, image_size=8, patch_size=4, vision_hidden_size=16,
                                             vision_layers=1, vision_heads=2, hidden_size=16, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=16, max_position_embeddings=32))
    save_checkpoint(model, tmp_path / "ckpt")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "ckpt").iterdir()}
    umask = os.umask(0)
    os.umask(umask)
    assert set(modes.values()) == {0o666 & ~umask}, modes


# --------------------------------------------------------------------------- small but misleading


def test_search_status_says_the_best_mixture_and_documents_its_config_option(dmo, searched_store):
    result = dmo("search", "status", "1", "--store-url", searched_store)
    assert result.code == 0 and "the best mixture" in result.out and "Top 1" not in result.out
    help_text = dmo("search", "status", "--help").out
    assert "--config" in help_text and "Project YAML" in " ".join(help_text.split())


def test_model_info_reports_the_tokens_actually_kept(dmo):
    result = dmo("model", "info", "-c", REPO / "configs" / "demo.yaml")
    assert result.code == 0
    assert "vision tokens kept 66/128 (51.6%; nominal mean retention 0.5375)" in " ".join(result.out.split())
    payload = json.loads(dmo("model", "info", "-c", REPO / "configs" / "demo.yaml", "--json").out)
    assert (payload["vision_tokens_kept"], payload["vision_tokens_all_layers"]) == (66, 128)


def test_arank_of_a_routed_checkpoint_routes_only_dense_layers_and_says_so(dmo, trained_project):
    from storage import Store

    with Store.open_existing(trained_project.store_url) as store:
        expert = next(m for m in store.list_models(kind="expert"))
    routed = [i for i, rho in enumerate(expert.efficiency["retention"]) if rho < 1.0]
    assert routed, "the tiny model routes some layers"
    result = dmo("model", "arank", expert.checkpoint_uri, "--route", "2", "--json", "-n", "4")
    payload = json.loads(result.out)
    assert payload["already_routed"] == routed and not set(payload["route"]) & set(routed)
    shown = dmo("model", "arank", expert.checkpoint_uri, "--route", "2", "-n", "4")
    assert f"layers {routed} are routed already" in " ".join(shown.out.split())
