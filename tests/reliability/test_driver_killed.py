"""`dmo search run` SIGKILLed mid-search, then `dmo search resume ID`, both as real processes.

tests/search/test_driver.py::test_killed_search_resumes_to_exactly_n_distinct_trials shows
the same at library level with an in-process pool; this one adds the real CLI on a local
Ray: a dead driver's trial left RUNNING in the Optuna study is found stale by its
heartbeat and retried, and the finished trials come through the resume unchanged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from process_support import end_session

from storage import Store

pytestmark = pytest.mark.slow

TRIALS = 8
WAIT_S = 240


def _dmo(*args: str) -> list[str]:
    return [sys.executable, "-m", "dmo", *args]


def test_killed_search_driver_resumes_from_the_cli_keeping_finished_trials(trained_project, cli_env, tmp_path):
    # Same project (experts cached), every dev sample scored: slow enough trials to kill in the middle.
    data = yaml.safe_load(trained_project.yaml_path.read_text())
    data["evaluation"].pop("dev_limit")
    config_path = tmp_path / "search.yaml"
    config_path.write_text(yaml.safe_dump(data))
    url = trained_project.store_url

    log = (tmp_path / "run.log").open("w")
    driver = subprocess.Popen(_dmo("search", "run", str(config_path), "--trials", str(TRIALS), "--store-url", url, "--json"),
                              env=cli_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    store = Store.open(url, upgrade=False)
    try:
        search = _wait_for_trials(store, driver, tmp_path / "run.log", minimum=3)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(60)
        log.close()
        end_session(driver.pid)  # Ray helpers the killed driver started and left behind

    before = {t.number: t for t in store.trials(search.id)}
    in_flight = {t.number for t in store.trials(search.id, state="running")}
    assert 3 <= len(before) < TRIALS and in_flight, "killed mid-search, with a trial in flight"
    assert store.get_search(search.id).status == "running"

    resumed = subprocess.run(_dmo("search", "resume", str(search.id), "--store-url", url, "--json"),
                             env=cli_env, capture_output=True, text=True, timeout=WAIT_S)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads(resumed.stdout)
    assert report["search"]["status"] == "finished" and report["search"]["trials"]["complete"] == TRIALS

    rows = store.trials(search.id, state=None)
    assert len({t.number for t in rows}) == len(rows), "no trial number twice"
    after = {t.number: t for t in store.trials(search.id)}
    assert len(after) == TRIALS and not store.trials(search.id, state="running")
    for number, trial in before.items():  # kept as they were, not re-run
        assert (after[number].weights, after[number].objective, after[number].created_at) == (trial.weights, trial.objective, trial.created_at)
    for number in in_flight:  # the dead driver's trial: failed with a reason, its mixture asked again
        row = next(t for t in rows if t.number == number)
        assert row.state == "fail" and "driver died" in row.efficiency["error"]
    store.dispose()


def _wait_for_trials(store: Store, driver: subprocess.Popen, log_path, *, minimum: int):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert driver.poll() is None, f"the search ended before it was killed:\n{log_path.read_text()[-3000:]}"
        searches = store.list_searches()
        if searches:
            complete = store.trials(searches[-1].id)
            if len(complete) >= minimum and store.trials(searches[-1].id, state="running"):
                return searches[-1]
        time.sleep(0.05)
    raise AssertionError(f"no {minimum} finished trials in {WAIT_S} s:\n{log_path.read_text()[-3000:]}")
