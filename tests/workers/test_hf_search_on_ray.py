"""A user's Hugging Face checkpoint through the whole CLI on a local Ray, per architecture.

`model: {backend: hf, path: DIR}` over a tiny random LLaVA or Qwen2-VL made here:
`dmo search` registers the checkpoint as the base (no base training), trains
one routed expert per domain on Ray workers, merges proxies and scores them;
`dmo best` reads the mixture back and `dmo export` writes a LLaMA-Factory
recipe whose weights are that mixture's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hf_support import BUILDERS, hf_project

from storage import Store

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _dmo(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dmo", *map(str, args)], check=False, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=400)


@pytest.mark.parametrize("arch", list(BUILDERS))
def test_search_best_and_export_on_a_local_checkpoint(tmp_path, arch):
    checkpoint = BUILDERS[arch](tmp_path / "checkpoint")
    data = yaml.safe_load(hf_project((REPO / "configs" / "tiny.yaml").read_text(), checkpoint, tmp_path / "work"))
    data["domains"] = data["domains"][:2]  # two experts keep the test short; the merge path is the same
    data["training"]["expert"]["steps"] = 4
    config = tmp_path / "hf.yaml"
    config.write_text(yaml.safe_dump(data))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "160"}
    env.pop("DMO_STORE_URL", None)

    searched = _dmo("search", "run", config, "--trials", "3", "--json", cwd=tmp_path, env=env)
    assert searched.returncode == 0, searched.stderr[-3000:]
    report = json.loads(searched.stdout)
    assert report["search"]["trials"]["complete"] == 3
    assert [e["domain"] for e in report["experts"]] == [d["name"] for d in data["domains"]]
    assert all(0 < e["efficiency"]["flops_ratio"] < 1 for e in report["experts"])  # routed layers save FLOPs

    with Store.open_existing(f"sqlite:///{tmp_path / 'work' / 'dmo.sqlite'}") as store:
        (base,) = [m for m in store.list_models() if m.kind == "base"]
    assert Path(base.checkpoint_uri) == checkpoint  # the user's checkpoint itself: registered, not trained

    best = _dmo("best", "-c", config, "--json", cwd=tmp_path, env=env)
    assert best.returncode == 0, best.stderr[-2000:]
    weights = json.loads(best.stdout)["trials"][0]["weights"]
    assert set(weights) == {d["name"] for d in data["domains"]} and sum(weights.values()) == pytest.approx(1)

    recipe = tmp_path / "recipe"
    exported = _dmo("export", str(report["search"]["id"]), "-c", config, "--format", "llamafactory", "--out", recipe, "--json", cwd=tmp_path,
                    env=env)
    assert exported.returncode == 0, exported.stderr[-2000:]
    written = json.loads(exported.stdout)
    assert set(written["counts"]) == set(weights) and sum(written["counts"].values()) == written["budget"]
    assert (recipe / "dataset_info.json").is_file()
