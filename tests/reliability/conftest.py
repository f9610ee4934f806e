"""Fixtures of the fault, bad-input and load tests: a small project on disk, its base and
experts trained once per module, a local Ray, a fresh PostgreSQL database, a CLI runner.

Every fault here is real: processes are SIGKILLed, TCP connections cut, file writes fail
with EFBIG. Nothing of Ray, the database or the filesystem is mocked.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pg_support import fresh_database
from reliability_support import REPO, Project, small_project, write_yaml
from search_support import mixture, search_row

VENV_BIN = Path(sys.executable).parent


@pytest.fixture()
def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_AUTH_MODE"] = "disabled"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env["OMP_NUM_THREADS"] = "1"
    env.pop("DMO_STORE_URL", None)
    return env


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory) -> Project:
    """Base and one expert per domain of the small project, trained in this process."""
    from dmo.config import load_config
    from dmo.training.jobs import base_spec, ensure_model, expert_spec
    from storage import Store

    root = tmp_path_factory.mktemp("project")
    path = write_yaml(root / "project.yaml", small_project(root / "workdir"))
    config = load_config(path)
    url = f"sqlite:///{root / 'store.sqlite'}"
    with Store.open(url) as store:
        base = ensure_model(config, store, base_spec(config))
        for domain in config.domain_names:
            ensure_model(config, store, expert_spec(config, domain), base=base)
    return Project(path, url)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for this module, in this process (2 CPUs); shut down afterwards.

    Its own temp dir under /tmp (socket paths must stay short); never `ray stop`,
    which would stop other people's Ray on this machine.
    """
    from workers.cluster import connect, shutdown

    temp = Path(tempfile.mkdtemp(prefix="rayrel", dir="/tmp"))
    connect(num_cpus=2, temp_dir=temp)
    try:
        yield
    finally:
        shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards (skips, or fails in CI, without a server)."""
    with fresh_database("dmo_t_rel") as url:
        yield url


@pytest.fixture()
def dmo(dmo_cli):
    """Run `dmo ARGS...` through the CLI's own entry point (the suite's one runner, tests/conftest.py)."""
    return dmo_cli


@pytest.fixture()
def tiny_yaml(tmp_path) -> Path:
    data = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    data["project"]["workdir"] = str(tmp_path / "workdir")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture()
def searched_store(tmp_path) -> str:
    from storage import Store

    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    with Store.open(url) as store:
        experts = [store.start_model(kind="expert", config_hash=f"h{d}", domain=d, base_id=None, training={}, finetune="full",
                                     efficiency={}).id for d in ("general", "ocr", "counting")]
        from dmo.config import load_config

        config = load_config(REPO / "configs" / "tiny.yaml")
        search = search_row(store, config, study_name="st", expert_ids=tuple(experts), with_study=False)
        store.record_trial(search_id=search.id, number=0, mixture=mixture(general=0.5, ocr=0.25, counting=0.25),
                           merge_method="task_arithmetic", params={}, scores={"general": 1.0}, objective=[1.0],
                           state="complete", duration_s=1.0)
    return url
