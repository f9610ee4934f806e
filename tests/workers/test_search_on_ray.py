"""`dmo search run` end to end on a local Ray: training tasks, evaluator actors, the store."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from storage import Store

pytestmark = pytest.mark.slow


def _dmo(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dmo", *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_search_run_on_local_ray_then_cached_experts(tiny_yaml, tmp_path, cli_env):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    first = _dmo("search", "run", str(tiny_yaml), "--trials", "5", "--store-url", url, "--json", env=cli_env)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads(first.stdout)
    assert report["search"]["status"] == "finished"
    assert report["search"]["trials"]["complete"] == 5
    assert len(report["best"]) == 5
    assert {e["domain"] for e in report["experts"]} == {"general", "ocr", "counting"}
    assert all(abs(sum(t["weights"].values()) - 1) < 1e-9 for t in report["best"])

    store = Store.open(url)
    models_before = {m.id for m in store.list_models()}
    second = _dmo("search", "run", str(tiny_yaml), "--trials", "2", "--store-url", url, "--json", env=cli_env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert {m.id for m in store.list_models()} == models_before, "the second search reuses every cached model"
    assert len(store.list_searches()) == 2


def test_bad_config_exits_with_a_message_not_a_traceback(tmp_path, cli_env):
    bad = tmp_path / "bad.yaml"
    bad.write_text("domains:\n  - name: ocr\n    source: {kind: synthetic, generator: ocr}\n    sizez: {train: 3}\n")
    result = _dmo("search", "run", str(bad), env=cli_env, timeout=60)
    assert result.returncode == 2
    assert "bad.yaml:4" in result.stderr and "domains[0].sizez" in result.stderr
    assert "Traceback" not in result.stderr
