"""A demo-shaped project end to end on a local Ray, then every README query of its store.

`dmo demo` runs from a project root whose configs/demo.yaml is the tiny
project (workdir `.dmo/demo`, as the shipped one): training tasks, evaluator
actors, the store, the recipes. Then each README command that reads the
store runs with no store flag from that root, and again with $DMO_STORE_URL
naming another store: every command reads the same store, the one the
precedence names (--store-url > $DMO_STORE_URL > the store of -c CONFIG).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from search_support import search_row
from storage import Store

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _dmo(*args: str, cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dmo", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A project root after `dmo demo --trials 5`, and the environment it ran in."""
    root = tmp_path_factory.mktemp("project")
    data = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    data["project"]["workdir"] = ".dmo/demo"
    (root / "configs").mkdir()
    (root / "configs" / "demo.yaml").write_text(yaml.safe_dump(data))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "160"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("DMO_STORE_URL", None)
    done = _dmo("demo", "--trials", "5", cwd=root, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "recipe (llamafactory)" in done.stdout and (root / ".dmo" / "demo" / "dmo.sqlite").is_file()
    return root, env


# Every README command that reads the store, as a user types it after `make demo`.
READ_COMMANDS = {
    "searches": ["searches", "--json"],
    "best": ["best", "--json"],
    "status": ["search", "status", "1", "--json"],
}


def _status_seen(name: str, output: str) -> str:
    payload = json.loads(output)
    if name == "searches":
        return payload[0]["status"]
    return payload["search"]["status"]


def test_the_demo_finished_its_search_and_exported_its_recipes(demo_project):
    root, _ = demo_project
    with Store.open_existing(f"sqlite:///{root / '.dmo/demo/dmo.sqlite'}") as store:
        (search,) = store.list_searches()
        assert search.status == "finished" and store.trial_counts(search.id) == {"complete": 5}
        assert {e.domain for e in map(store.get_model, search.expert_ids)} == {"general", "ocr", "counting"}
    assert (root / ".dmo/demo/recipes/search-1/mixture.json").is_file()


def test_every_read_command_finds_the_demo_store_with_no_flags(demo_project):
    root, env = demo_project
    for name, args in READ_COMMANDS.items():
        done = _dmo(*args, cwd=root, env=env)
        assert done.returncode == 0, f"{name}: {done.stderr}"
        assert _status_seen(name, done.stdout) == "finished", name
    export = _dmo("export", "1", "-f", "json", "-o", "mix.json", "--budget", "100", cwd=root, env=env)
    assert export.returncode == 0, export.stderr
    assert sum(json.loads((root / "mix.json").read_text())["counts"].values()) == 100


def test_dmo_store_url_wins_over_the_config_for_every_command(demo_project, tmp_path):
    root, env = demo_project
    other = tmp_path / "other.sqlite"
    shutil.copy(root / ".dmo/demo/dmo.sqlite", other)
    with Store.open_existing(f"sqlite:///{other}") as store:
        store.set_search_status(1, "interrupted")  # the copy's search 1 differs from the demo's
    moved = {**env, "DMO_STORE_URL": f"sqlite:///{other}"}
    for name, args in READ_COMMANDS.items():
        for extra in ([], ["-c", "configs/demo.yaml"]):
            done = _dmo(*args, *extra, cwd=root, env=moved)
            assert done.returncode == 0, f"{name}: {done.stderr}"
            assert _status_seen(name, done.stdout) == "interrupted", (name, extra)
    flag = _dmo("best", "--json", "--store-url", f"sqlite:///{root / '.dmo/demo/dmo.sqlite'}", cwd=root, env=moved)
    assert _status_seen("best", flag.stdout) == "finished"  # --store-url wins over $DMO_STORE_URL

    def recipes(path: Path) -> int:
        with closing(sqlite3.connect(path)) as connection:
            return connection.execute("SELECT count(*) FROM dmo_recipes").fetchone()[0]

    before = recipes(root / ".dmo/demo/dmo.sqlite")
    for index, extra in enumerate(([], ["-c", "configs/demo.yaml"])):
        done = _dmo("export", "1", "-f", "json", "-o", str(tmp_path / f"mix-{index}.json"), *extra, cwd=root, env=moved)
        assert done.returncode == 0, done.stderr
    # The copy was taken with the demo's recipes: both exports are recorded there, none in the demo's store.
    assert (recipes(other), recipes(root / ".dmo/demo/dmo.sqlite")) == (before + 2, before)


def test_a_read_command_on_a_missing_store_creates_nothing(demo_project, tmp_path):
    root, env = demo_project
    for args in READ_COMMANDS.values():
        done = _dmo(*args, "--store-url", f"sqlite:///{tmp_path / 'typo/dir/dmo.sqlite'}", cwd=root, env=env)
        assert done.returncode == 3 and "Traceback" not in done.stderr
        assert "no store here" in done.stderr
    assert not (tmp_path / "typo").exists()
    elsewhere = _dmo("searches", cwd=tmp_path, env=env)  # no configs/demo.yaml here, no flag, no env
    assert elsewhere.returncode == 3 and "DMO_STORE_URL" in elsewhere.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_config_exits_with_a_message_not_a_traceback(tmp_path, demo_project):
    _, env = demo_project
    bad = tmp_path / "bad.yaml"
    bad.write_text("domains:\n  - name: ocr\n    source: {kind: synthetic, generator: ocr}\n    sizez: {train: 3}\n")
    result = _dmo("search", "run", str(bad), cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 2
    assert "bad.yaml:4" in result.stderr and "domains[0].sizez" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_sampler_is_refused_before_ray_starts(tmp_path, demo_project):
    root, env = demo_project
    # Were Ray started or joined first, this address would fail the command with another error.
    result = _dmo("search", "run", "--sampler", "foo", cwd=root, env={**env, "RAY_ADDRESS": "127.0.0.1:1"}, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    flat = " ".join(result.stderr.split())
    assert "--sampler: unknown sampler 'foo'; known: tpe, gp, cmaes, qmc, random, grid" in flat
    assert "search.sampler" not in flat


def test_a_search_whose_trials_all_fail_exits_4(demo_project, tmp_path):
    """Its experts' checkpoints are gone: every evaluator fails, so every trial does."""
    root, env = demo_project
    url = f"sqlite:///{tmp_path / 'copy.sqlite'}"
    shutil.copy(root / ".dmo/demo/dmo.sqlite", tmp_path / "copy.sqlite")
    with Store.open_existing(url) as store:
        search = store.get_search(1)
        broken = [store.start_model(kind="expert", config_hash=f"gone-{d}", domain=d, base_id=None, training={},
                                    finetune="full", efficiency={}) for d in search.domains]
        for model in broken:
            store.finish_model(model.id, checkpoint_uri=str(tmp_path / "gone" / model.domain), checkpoint_sha256="0" * 64,
                               metrics={}, duration_s=0.0)
        config = search.config.model_copy(update={"search": search.config.search.model_copy(update={"trials": 2})})
        failing = search_row(store, config, base_id=search.snapshot.base_id, expert_ids=tuple(m.id for m in broken))
    done = _dmo("search", "resume", str(failing.id), "--store-url", url, cwd=root, env=env)
    assert done.returncode == 4 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"search {failing.id} failed" in " ".join(done.stderr.split())
