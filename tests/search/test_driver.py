"""The search driver over an in-process pool, against a real SQLite store and Optuna study."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pytest

from dmo.search.driver import run_search
from dmo.search.pool import LocalPool
from dmo.search.proxy import ProxyResult
from dmo.search.study import new_study_name, open_study
from storage import Store

TARGET = np.array([0.6, 0.3, 0.1])


class AnalyticEvaluator:
    """Scores peak at TARGET; stands in for merging + benchmarks so the driver is tested alone."""

    def __init__(self, fail_if_first_above: float | None = None, delay_s: float = 0.0):
        self.fail_if_first_above = fail_if_first_above
        self.delay_s = delay_s
        self.calls = 0

    def evaluate(self, weights, *, limit=None):
        self.calls += 1
        time.sleep(self.delay_s)
        w = np.asarray(weights)
        if self.fail_if_first_above is not None and w[0] > self.fail_if_first_above:
            raise RuntimeError("evaluator crashed")
        scores = {name: float(100 - 100 * abs(w[i] - TARGET[i])) for i, name in enumerate(("general", "ocr", "counting"))}
        return ProxyResult(scores={"exact_match": scores, "likelihood": scores}, samples=3, merge_seconds=0.0, eval_seconds=0.0, routing={})


def _search(store: Store, config, trials: int):
    study_name = new_study_name("test")
    open_study(store.url, study_name, config, sampler=config.search.sampler, seed=config.search.seed)
    snapshot = config.model_dump(mode="json")
    return store.create_search(name="test", config={**snapshot, "trials": trials, "seed": config.search.seed, "base_id": None},
                               sampler=config.search.sampler, objective={"kind": "mean"}, study_name=study_name,
                               domains=list(config.domain_names), expert_ids=[])


@pytest.fixture()
def store(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'dmo.sqlite'}")
    yield store
    store.dispose()


def test_search_finishes_with_the_requested_trials(store, tiny_config):
    search = _search(store, tiny_config, 8)
    outcome = run_search(store, search, tiny_config, LocalPool(AnalyticEvaluator()), show_progress=False)
    assert (outcome.completed, outcome.failed, outcome.status) == (8, 0, "finished")
    trials = store.trials(search.id)
    assert sorted(t.number for t in trials) == list(range(8))
    assert trials[0].weights == pytest.approx({"general": 1 / 3, "ocr": 1 / 3, "counting": 1 / 3})  # warm start
    best = store.best_trials(search.id, top_k=1)[0]
    assert best.objective[0] == max(t.objective[0] for t in trials)


def test_same_seed_gives_the_same_trials(store, tiny_config):
    runs = []
    for _ in range(2):
        search = _search(store, tiny_config, 6)
        run_search(store, search, tiny_config, LocalPool(AnalyticEvaluator()), show_progress=False)
        runs.append([tuple(round(t.weights[d], 12) for d in tiny_config.domain_names) for t in store.trials(search.id)])
    assert runs[0] == runs[1]


def test_a_failing_evaluator_fails_its_trial_not_the_search(store, tiny_config):
    search = _search(store, tiny_config, 8)
    outcome = run_search(store, search, tiny_config, LocalPool(AnalyticEvaluator(fail_if_first_above=0.5)), show_progress=False)
    assert outcome.completed == 8 and outcome.status == "finished"
    assert outcome.failed >= 1
    failed = store.trials(search.id, state="fail")
    assert failed and all(t.weights["general"] > 0.5 for t in failed)
    assert all(t.weights["general"] <= 0.5 for t in store.trials(search.id))


def _drive_until_killed(url: str, search_id: int, config_json: str) -> None:
    from dmo.config import DmoConfig

    store = Store.open(url)
    config = DmoConfig.model_validate_json(config_json)
    run_search(store, store.get_search(search_id), config, LocalPool(AnalyticEvaluator(delay_s=0.4)), show_progress=False)


@pytest.mark.slow
def test_killed_search_resumes_to_exactly_n_distinct_trials(store, tiny_config):
    search = _search(store, tiny_config, 10)
    context = multiprocessing.get_context("spawn")
    driver = context.Process(target=_drive_until_killed, args=(store.url, search.id, tiny_config.model_dump_json()))
    driver.start()
    deadline = time.monotonic() + 60
    while len(store.trials(search.id)) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    driver.kill()  # SIGKILL: no cleanup, a trial is left RUNNING
    driver.join()
    finished_before = {t.number for t in store.trials(search.id)}
    assert 4 <= len(finished_before) < 10

    outcome = run_search(store, store.get_search(search.id), tiny_config, LocalPool(AnalyticEvaluator()), show_progress=False)
    trials = store.trials(search.id)
    assert outcome.completed == 10 and len(trials) == 10
    assert len({t.number for t in trials}) == 10
    assert finished_before <= {t.number for t in trials}
    assert store.trials(search.id, state="running") == []


def test_pareto_front_keeps_exactly_the_non_dominated_points():
    from dmo.search.objectives import pareto_front

    points = [(50, 10), (40, 30), (45, 5), (40, 30), (30, 35), (20, 20)]
    assert pareto_front(points) == [0, 1, 3, 4]


def test_multi_objective_search_records_mean_and_worst(store, tiny_config):
    from dmo.search.objectives import pareto_front

    objective = tiny_config.search.objective.model_copy(update={"kind": "multi"})
    config = tiny_config.model_copy(update={"search": tiny_config.search.model_copy(update={"objective": objective})})
    search = _search(store, config, 6)
    outcome = run_search(store, search, config, LocalPool(AnalyticEvaluator()), show_progress=False)
    assert outcome.completed == 6
    trials = store.trials(search.id)
    for trial in trials:
        scores = [trial.scores[d] for d in config.domain_names]
        assert trial.objective[0] == pytest.approx(sum(scores) / len(scores))
        assert trial.objective[1] == pytest.approx(min(scores))
    assert pareto_front([t.objective for t in trials])


def test_pruning_stops_weak_trials_after_the_subset(store, tiny_config):
    pruning = tiny_config.search.pruning.model_copy(update={"enabled": True, "subset": 4})
    config = tiny_config.model_copy(update={"search": tiny_config.search.model_copy(update={"pruning": pruning, "sampler": "random"})})
    evaluator = AnalyticEvaluator()
    limits = []
    original = evaluator.evaluate

    def recording(weights, *, limit=None):
        limits.append(limit)
        return original(weights, limit=limit)

    evaluator.evaluate = recording
    search = _search(store, config, 14)
    outcome = run_search(store, search, config, LocalPool(evaluator), show_progress=False)
    assert outcome.completed + outcome.pruned == 14
    assert outcome.pruned >= 1
    assert limits.count(4) == 14  # every trial is probed on the subset first
    assert limits.count(None) == outcome.completed  # only survivors see the full set
    assert len(store.trials(search.id, state="pruned")) == outcome.pruned
