"""What scripts read: `--json` output is strict JSON, and progress bars never mix into stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dmo.cli.options import print_json

REPO = Path(__file__).resolve().parents[2]


def _strict(text: str):
    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_undefined_correlations_print_as_null(capsys):
    print_json({"spearman": float("nan"), "rows": [1.5, float("inf")], "nested": {"tau": float("-inf")}})
    assert _strict(capsys.readouterr().out) == {"spearman": None, "rows": [1.5, None], "nested": {"tau": None}}


def test_training_progress_goes_to_stderr_and_json_to_stdout(tmp_path):
    """`dmo train base` in a real process: the bar is on stderr; with --json stdout parses as JSON."""
    config = tmp_path / "tiny.yaml"
    config.write_text((REPO / "configs" / "tiny.yaml").read_text().replace("steps: 150", "steps: 3")
                      .replace("workdir: .dmo/tiny", f"workdir: {tmp_path / 'work'}"))
    shown = _dmo("train", "base", "-c", str(config))
    assert "train base" in shown.stderr and "train base" not in shown.stdout
    assert "base model" in shown.stdout
    scripted = _dmo("train", "base", "-c", str(config), "--json")  # cached now: same model
    payload = _strict(scripted.stdout)
    assert payload["kind"] == "base" and payload["metrics"]["final_loss"] > 0


def _dmo(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "dmo", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "120"})
    assert done.returncode == 0, done.stderr
    return done


def test_a_cached_model_is_announced_as_cached_not_as_trained(capsys):
    from datetime import UTC, datetime, timedelta

    from dmo.cli.search_cmd import model_announcer
    from storage import ModelRecord

    started = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)

    def model(finished: datetime) -> ModelRecord:
        return ModelRecord(id=1, kind="base", config_hash="h", domain=None, base_id=None, status="finished",
                           training={}, finetune="full", efficiency={}, mod_schedule=None, flops_ratio=None,
                           kv_ratio=None, checkpoint_uri="/c", checkpoint_sha256="0" * 64,
                           metrics={"train_seconds": 4.0}, error=None, attempts=1, claim_token=None,
                           heartbeat_at=None, created_at=finished, started_at=finished, finished_at=finished,
                           duration_s=4.0)

    announce = model_announcer(started)
    announce(model(started - timedelta(days=1)))
    announce(model(started + timedelta(seconds=30)))
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["✓ base ready (cached, trained 2026-12-01 05:00 UTC)", "✓ base ready (trained in 4 s)"]
