"""lmms-eval as a benchmark scorer (issue 22, item 4): a model in memory scored by lmms-eval itself.

lmms-eval lives in a virtualenv of its own (`make lmms-venv`, which .ci/run builds; see the
Makefile for why): $DMO_LMMS_PYTHON, default .venv-lmms/bin/python. Without it the test that runs
it skips, saying why; with DMO_REQUIRE_LMMS=1 (CI) it fails instead. lmms_eval_check.py says what
the run does and why a score of exactly 50 can only come from lmms-eval seeing what dmo sees.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON = Path(os.environ.get("DMO_LMMS_PYTHON", REPO / ".venv-lmms" / "bin" / "python"))


@pytest.fixture(scope="module")
def lmms_python() -> Path:
    if not PYTHON.is_file():
        message = f"no lmms-eval virtualenv at {PYTHON} (`make lmms-venv` builds it)"
        if os.environ.get("DMO_REQUIRE_LMMS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return PYTHON


@pytest.mark.slow
def test_lmms_eval_scores_a_model_in_memory_on_a_local_task_as_dmo_scores_it(lmms_python, tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([str(lmms_python), str(Path(__file__).with_name("lmms_eval_check.py")), str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["distinct_answers"] >= 2  # the answers depend on the sample, so spoiling half of them shows
    assert report["scores"] == {"digits_file": 50.0, "digits_lmms": 50.0}
    assert report["samples"] == {"digits_file": 12, "digits_lmms": 12}
    assert report["checkpoint_unchanged"]
    assert report["checkpoints_written"] == ["llava/model.safetensors"]  # the moved weights never reach disk
    assert "no lmms-eval task 'nope'" in report["errors"]["unknown_task"]
    assert "sharegpt_exact_match" in report["errors"]["unknown_task"]  # the tasks that are there
    assert "reports no score 'bleu'" in report["errors"]["unknown_score"]
    assert "exact_match" in report["errors"]["unknown_score"]


def test_without_lmms_eval_an_lmms_benchmark_is_refused_with_the_way_to_install_it(
    tiny_config, tiny_models, tiny_data, tmp_path, monkeypatch
):
    """In dmo's own virtualenv lmms-eval is absent (or, beside PyPI's torchvision, fails to import)."""
    import sys

    from search_support import configured

    from dmo.errors import ConfigError
    from dmo.evaluation import evaluate
    from dmo.evaluation.benchmarks import declared_benchmarks
    from dmo.models.backends import backend_for

    monkeypatch.setitem(sys.modules, "lmms_eval", None)  # an import of it raises ImportError, installed or not
    config = configured(tiny_config, benchmarks=[
        {"name": "held", "metric": "lmms_eval",
         "lmms_eval": {"task": "t", "tasks_dir": str(tmp_path), "score": "exact_match"}}])
    backend = backend_for(config)
    _, experts = tiny_models
    model = backend.load(Path(experts["ocr"].checkpoint_uri))
    with pytest.raises(ConfigError) as refused:
        evaluate(model, tiny_data, declared_benchmarks(config, "search"), backend=backend)
    assert "lmms-eval is not importable" in refused.value.render()
    assert "pip install 'dmo[lmms]'" in refused.value.render()


def test_a_search_with_an_lmms_benchmark_it_cannot_score_is_refused_before_any_training(
    tiny_config, tmp_path, monkeypatch
):
    import sys

    from search_support import configured

    from dmo.errors import ConfigError
    from storage import Store
    from workers.api import start_search

    monkeypatch.setitem(sys.modules, "lmms_eval", None)
    config = configured(tiny_config, benchmarks=[
        {"name": "held", "metric": "lmms_eval",
         "lmms_eval": {"task": "t", "tasks_dir": str(tmp_path), "score": "exact_match"}}])
    store = Store.open(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        with pytest.raises(ConfigError, match="lmms-eval is not importable"):
            start_search(config, store)
        assert store.list_models() == [] and store.list_searches() == []
    finally:
        store.dispose()


@pytest.mark.parametrize(("benchmark", "message"), [
    ({"file": "b.jsonl", "metric": "lmms_eval"}, "give both or neither"),
    ({"metric": "exact_match", "lmms_eval": {"task": "t", "tasks_dir": "x", "score": "s"}}, "give both or neither"),
    ({"file": "b.jsonl", "metric": "lmms_eval", "lmms_eval": {"task": "t", "tasks_dir": "x", "score": "s"}},
     "exactly one of"),
    ({"metric": "lmms_eval", "lmms_eval": {"task": "t", "tasks_dir": "x"}}, "lmms_eval.score"),
])
def test_an_lmms_benchmark_is_checked_when_the_config_is_read(benchmark, message, tmp_path):
    import yaml

    from dmo.config.loader import parse_config
    from dmo.errors import ConfigError

    data = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    data["benchmarks"] = [{"name": "held", **benchmark}]
    with pytest.raises(ConfigError) as refused:
        parse_config(yaml.safe_dump(data), source="c.yaml", base_dir=tmp_path)
    assert message in refused.value.render()


def test_a_relative_tasks_dir_is_read_from_the_config_s_folder(tmp_path):
    import yaml

    from dmo.config.loader import parse_config

    data = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    data["benchmarks"] = [{"name": "held", "metric": "lmms_eval",
                           "lmms_eval": {"task": "t", "tasks_dir": "tasks", "score": "exact_match"}}]
    config = parse_config(yaml.safe_dump(data), source="c.yaml", base_dir=tmp_path)
    assert config.benchmarks[0].lmms_eval.tasks_dir == tmp_path / "tasks"
