"""Dead Ray processes: a training worker and a proxy evaluator are SIGKILLed mid-work.

A local Ray runs in this process (the `local_ray` fixture); the victims are found by
their process id (the training loop holds its metrics file open; an actor reports its
own pid) and killed with SIGKILL, as the kernel's OOM killer or a preemption would.
The training task is retried and resumes from its checkpoint; the evaluator actor is
restarted by Ray and the trial it was scoring is run again (max_task_retries=1).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from reliability_support import cpu_seconds, holders_of, small_project, write_yaml

pytestmark = pytest.mark.slow

WAIT_S = 180  # generous: other test runs share the two cores


def _wait_for(predicate, what: str, timeout: float = WAIT_S, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def test_killed_training_worker_is_retried_and_resumes_from_its_checkpoint(tmp_path, local_ray):
    import ray

    from dmo.config import load_config
    from dmo.models.checkpoint import verify_checkpoint
    from dmo.training.jobs import base_spec, ensure_model, expert_spec
    from storage import Store
    from workers.training import ensure_model_task

    steps, every = 150, 10
    path = write_yaml(tmp_path / "p.yaml", small_project(tmp_path / "wd", expert={"steps": steps, "checkpoint_every": every}))
    config = load_config(path)
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    store = Store.open(url)
    base = ensure_model(config, store, base_spec(config))

    ref = ensure_model_task.remote(config, url, expert_spec(config, "counting"), base)
    models = Path(config.project.workdir) / "models"
    progress = _wait_for(lambda: next(models.glob(".resume-expert-counting-*/progress.json"), None), "a resumable checkpoint")
    metrics = next(models.glob("expert-counting-*.metrics.jsonl"))
    victims = _wait_for(lambda: holders_of(metrics) - {os.getpid()}, "the training worker's pid")
    assert len(victims) == 1, victims
    (pid,) = victims
    checkpointed = json.loads(progress.read_text())["step"]
    os.kill(pid, signal.SIGKILL)

    record = ray.get(ref, timeout=WAIT_S)
    assert record.status == "finished"
    assert record.metrics["resumed_from_step"] >= checkpointed >= every, "the retry resumed, it did not start over"
    assert record.metrics["resumed_from_step"] < steps
    experts = [m for m in store.list_models(kind="expert") if m.domain == "counting"]
    assert [m.id for m in experts] == [record.id], "exactly one expert row"
    assert experts[0].status == "finished" and experts[0].error is None
    verify_checkpoint(record.checkpoint_uri)
    logged = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert logged == list(range(1, steps + 1)), "every step logged once, none twice after the resume"
    assert not list(models.glob(".resume-expert-counting-*")), "the resume state is removed once finished"
    store.dispose()


def test_killed_evaluator_is_restarted_and_its_trial_retried(trained_project, local_ray):
    import ray
    from search_support import configured

    from dmo.search.searches import create_search, proxy_source, run_search
    from dmo.training.jobs import base_spec, ensure_model, expert_spec
    from storage import Store
    from workers.evaluators import RayPool

    trials = 8
    config = trained_project.config
    store = Store.open(trained_project.store_url)
    base = ensure_model(config, store, base_spec(config))
    experts = {d: ensure_model(config, store, expert_spec(config, d), base=base) for d in config.domain_names}
    # Every dev sample, one per batch, with the likelihood pass: each evaluation lasts seconds, long
    # enough to be seen running and killed inside. (Scored in batches, an exact-match evaluation is
    # over in a fraction of a second, before a poll of the store sees trial 2 running.)
    searched = configured(config, search__trials=trials, evaluation__dev_limit=None, evaluation__max_new_tokens=16,
                          evaluation__score="likelihood", evaluation__batch_size=1)
    search = create_search(store, searched, base=base, experts=experts)
    pool = RayPool(proxy_source(store, search), size=1)

    def actor_pid() -> int:
        return ray.get(pool._actors[0].__ray_call__.remote(lambda actor: os.getpid()), timeout=WAIT_S)

    pid = actor_pid()
    outcome: dict = {}
    driver = threading.Thread(target=lambda: outcome.update(result=run_search(store, search, pool)))
    driver.start()
    try:
        # Mid-trial: trial 2 is recorded as running and the actor is burning CPU on it.
        _wait_for(lambda: any(t.number == 2 for t in store.trials(search.id, state="running")), "trial 2 to start")
        idle = cpu_seconds(pid)
        _wait_for(lambda: cpu_seconds(pid) - idle >= 0.05, "the evaluator to work on trial 2", every=0.01)
        os.kill(pid, signal.SIGKILL)
        driver.join(WAIT_S)
        assert not driver.is_alive(), "the search did not finish"
        assert actor_pid() != pid, "Ray restarted the evaluator in a new process"
    finally:
        pool.close()

    result = outcome["result"]
    assert (result.status, result.completed, result.failed) == ("finished", trials, 0)
    rows = store.trials(search.id, state=None)
    assert [t.number for t in rows] == list(range(trials)), "no trial lost or recorded twice"
    assert all(t.state == "complete" for t in rows), [(t.number, t.state, t.efficiency.get("error")) for t in rows]
    # Trial 2 was mid-evaluation in the killed process and no trial failed or was added: the
    # same trial was evaluated again by the restarted actor (Ray's task retry), not replaced.
    assert rows[2].state == "complete" and rows[2].objective[0] is not None
    assert store.get_search(search.id).status == "finished"
    store.dispose()
