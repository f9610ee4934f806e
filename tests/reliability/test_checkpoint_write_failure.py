"""A checkpoint write that fails part-way, for real: `dmo train expert` runs with a file-size
limit (RLIMIT_FSIZE, SIGXFSZ ignored), so writing the weights fails with EFBIG after the
first megabyte, as on a full disk or over a quota.

The tests run as root, so a read-only directory would not stop a write; a size limit does.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_support import small_project, write_yaml

pytestmark = pytest.mark.slow

LIMIT_BYTES = 1 << 20  # the weights are ~2.7 MB; the store, tokenizer and metrics stay far below


def _file_size_limited() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))


@pytest.fixture()
def big_project(tmp_path):
    """A project whose weights exceed the limit, with its base trained (unlimited) here."""
    from dmo.config import load_config
    from dmo.training.jobs import base_spec, ensure_model
    from storage import Store

    def make(**expert):
        data = small_project(tmp_path / "wd", expert=expert)
        data["model"] |= {"hidden_size": 128, "intermediate_size": 256}
        path = write_yaml(tmp_path / "big.yaml", data)
        url = f"sqlite:///{tmp_path / 'store.sqlite'}"
        config = load_config(path)
        with Store.open(url) as store:
            ensure_model(config, store, base_spec(config))
        return path, url, config

    return make


def _train_expert(path: Path, url: str, env: dict, *, limited: bool) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dmo", "train", "expert", "ocr", "--config", str(path), "--store-url", url, "--json"],
        env=env, capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limited if limited else None,
    )


def _expert_rows(url: str):
    from storage import Store

    with Store.open(url, upgrade=False) as store:
        return [m for m in store.list_models(kind="expert")]


@pytest.mark.parametrize(
    ("checkpoint_every", "message"),
    [(0, "could not write checkpoint: File too large"), (4, "could not write the resumable training state: File too large")],
    ids=["final-checkpoint", "resumable-state"],
)
def test_a_failed_checkpoint_write_is_a_clear_error_and_records_nothing_finished(big_project, cli_env, checkpoint_every, message):
    path, url, config = big_project(checkpoint_every=checkpoint_every)
    models = Path(config.project.workdir) / "models"

    failed = _train_expert(path, url, cli_env, limited=True)
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert message in failed.stderr and str(models) in failed.stderr, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr

    assert not [p for p in models.iterdir() if p.name.startswith("expert-ocr-") and p.is_dir()], "no checkpoint at the final path"
    assert not [p for p in models.iterdir() if p.name.startswith((".tmp-", ".old-"))], "no staging directory left behind"
    (row,) = _expert_rows(url)
    assert row.status == "failed" and row.checkpoint_uri is None
    assert "File too large" in (row.error or "")

    if checkpoint_every == 0:  # the same command with room to write: the failed row becomes the finished one
        again = _train_expert(path, url, cli_env, limited=False)
        assert again.returncode == 0, again.stderr[-3000:]
        (row,) = _expert_rows(url)
        assert row.status == "finished" and row.attempts == 2 and Path(row.checkpoint_uri).is_dir()
