"""Shared fixtures: everything the tests use is generated, nothing is downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Ray and the tests run offline and without auth on the loopback interface.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Two cores, several processes: more torch threads only oversubscribe them."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    """configs/tiny.yaml with its workdir in a temporary folder (shared by the session)."""
    from dmo.config import load_config

    config = load_config(REPO / "configs" / "tiny.yaml")
    workdir = tmp_path_factory.mktemp("tiny-workdir")
    return config.model_copy(update={"project": config.project.model_copy(update={"workdir": workdir})})


@pytest.fixture(scope="session")
def tiny_data(tiny_config):
    from dmo.data.prepared import prepare_data

    return prepare_data(tiny_config)


@pytest.fixture(scope="session")
def tiny_store(tiny_config):
    from storage import Store

    store = Store.open(tiny_config.project.resolved_store_url())
    yield store
    store.dispose()


@pytest.fixture(scope="session")
def tiny_models(tiny_config, tiny_store, tiny_data):
    """The tiny project's base and experts, trained once per test session."""
    from dmo.training.jobs import base_spec, ensure_model, expert_spec

    base = ensure_model(tiny_config, tiny_store, base_spec(tiny_config), data=tiny_data)
    experts = {
        d: ensure_model(tiny_config, tiny_store, expert_spec(tiny_config, d), base=base, data=tiny_data)
        for d in tiny_config.domain_names
    }
    return base, experts


@pytest.fixture()
def dmo_cli(capsys, monkeypatch):
    """Run `dmo ARGS...` through the CLI's own entry point in this process: exit code and output."""
    import sys

    from dmo.cli.main import main

    class Result:
        def __init__(self, code: int, out: str, err: str):
            self.code, self.out, self.err = code, out, err

        def refused(self, *fragments: str, code: int = 2) -> None:
            assert self.code == code, f"exit {self.code}:\n{(self.out + self.err)[-2000:]}"
            assert "Traceback" not in self.out + self.err
            flat = " ".join(self.err.split())
            for fragment in fragments:
                assert fragment in flat, f"{fragment!r} not in:\n{self.err}"

    def run(*args) -> Result:
        monkeypatch.setattr(sys, "argv", ["dmo", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def finished_search(tiny_config, tiny_store, tiny_models, tiny_data):
    """A 3-trial search over the tiny experts, run in this process, and its proxy evaluator."""
    from dmo.search.pool import LocalPool
    from dmo.search.proxy import ProxyEvaluator
    from dmo.search.searches import create_search, proxy_source, run_search
    from search_support import configured

    base, experts = tiny_models
    search = create_search(tiny_store, configured(tiny_config, search__trials=3), base=base, experts=experts)
    evaluator = ProxyEvaluator(proxy_source(tiny_store, search), data=tiny_data)
    run_search(tiny_store, search, LocalPool(evaluator))
    return search, evaluator
