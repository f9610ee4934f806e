"""Two searches started at once on an empty workdir and one fresh store: each model is trained
once (one claims it, the other waits and reuses it), and both searches finish every trial.

Before training was claimed in the store, both processes trained the base into the same folder
(its metrics file held two "step 1" lines), the second replaced the first on disk, and every
trial of one search failed with "the expert was trained from base b891…, not from this base".
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from reliability_support import small_project, write_yaml

from storage import Store

WAIT_S = 240
TRIALS = 3


def _cold_search(config_path: str, url: str, start, index: int) -> None:
    import torch
    from search_support import configured

    from dmo.config import load_config
    from dmo.runtime import quiet_optuna
    from dmo.search.pool import LocalPool
    from dmo.search.proxy import ProxyEvaluator
    from dmo.search.searches import create_search, proxy_source, run_search
    from dmo.training.jobs import base_spec, ensure_model, expert_spec

    torch.set_num_threads(1)
    quiet_optuna()
    config = configured(load_config(config_path), search__trials=TRIALS, search__seed=index)
    store = Store.open(url)
    start.wait(WAIT_S)  # both begin at the same moment, on a store with no model yet
    base = ensure_model(config, store, base_spec(config))
    experts = {d: ensure_model(config, store, expert_spec(config, d), base=base) for d in config.domain_names}
    search = create_search(store, config, base=base, experts=experts)
    outcome = run_search(store, search, LocalPool(ProxyEvaluator(proxy_source(store, search))))
    assert outcome.status == "finished", outcome
    store.dispose()


def _two_at_once(tmp_path: Path, url: str) -> None:
    project = small_project(tmp_path / "workdir")
    project["training"]["heartbeat_s"] = 1
    config_path = write_yaml(tmp_path / "project.yaml", project)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    workers = [context.Process(target=_cold_search, args=(str(config_path), url, start, i)) for i in range(2)]
    for worker in workers:
        worker.start()
    start.wait(WAIT_S)
    for worker in workers:
        worker.join(WAIT_S)
    for worker in workers:
        if worker.is_alive():
            worker.kill()
    assert [w.exitcode for w in workers] == [0, 0]

    with Store.open_existing(url) as store:
        models = store.list_models()
        assert len(models) == 4 and all(m.status == "finished" for m in models)  # base + 3 experts
        assert all(m.attempts == 1 for m in models), "no model was trained twice"
        for search in store.list_searches():
            rows = store.trials(search.id, state=None)
            assert search.status == "finished" and [t.state for t in rows] == ["complete"] * TRIALS
    for metrics in (tmp_path / "workdir" / "models").glob("*.metrics.jsonl"):
        steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
        assert steps == list(range(1, len(steps) + 1)), f"{metrics.name}: each step logged once"


@pytest.mark.slow
def test_two_cold_searches_on_one_sqlite_store(tmp_path):
    _two_at_once(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite'}")


@pytest.mark.slow
@pytest.mark.postgres
def test_two_cold_searches_on_one_postgresql_database(tmp_path, pg_url):
    _two_at_once(tmp_path, pg_url)
