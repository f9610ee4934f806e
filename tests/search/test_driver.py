"""The search driver over an in-process pool, against a real SQLite store and Optuna study."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pytest
from search_support import configured, search_row

from dmo.search.pool import LocalPool, ProxyResult
from dmo.search.searches import run_search
from storage import Store

TARGET = np.array([0.6, 0.3, 0.1])


class AnalyticEvaluator:
    """Scores peak at TARGET; stands in for merging + benchmarks so the driver is tested alone."""

    def __init__(self, fail_if_first_above: float | None = None, delay_s: float = 0.0):
        self.fail_if_first_above = fail_if_first_above
        self.delay_s = delay_s
        self.calls = 0

    def run(self, request):
        return self.evaluate(request.weights, limit=request.limit)

    def evaluate(self, weights, *, limit=None):
        self.calls += 1
        time.sleep(self.delay_s)
        w = np.asarray(weights)
        if self.fail_if_first_above is not None and w[0] > self.fail_if_first_above:
            raise RuntimeError("evaluator crashed")
        scores = {name: float(100 - 100 * abs(w[i] - TARGET[i])) for i, name in enumerate(("general", "ocr", "counting"))}
        return ProxyResult(scores={"exact_match": scores, "likelihood": scores}, samples=3, merge_seconds=0.0, eval_seconds=0.0, routing={})


def _search(store: Store, config, trials: int, **fields):
    return search_row(store, configured(config, search__trials=trials, **fields))


@pytest.fixture()
def store(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'dmo.sqlite'}")
    yield store
    store.dispose()


def test_search_finishes_with_the_requested_trials(store, tiny_config):
    search = _search(store, tiny_config, 8)
    outcome = run_search(store, search, LocalPool(AnalyticEvaluator()))
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
        run_search(store, search, LocalPool(AnalyticEvaluator()))
        runs.append([tuple(round(t.weights[d], 12) for d in tiny_config.domain_names) for t in store.trials(search.id)])
    assert runs[0] == runs[1]


def test_a_failing_evaluator_fails_its_trial_not_the_search(store, tiny_config):
    search = _search(store, tiny_config, 8)
    outcome = run_search(store, search, LocalPool(AnalyticEvaluator(fail_if_first_above=0.5)))
    assert outcome.completed == 8 and outcome.status == "finished"
    assert outcome.failed >= 1
    failed = store.trials(search.id, state="fail")
    assert failed and all(t.weights["general"] > 0.5 for t in failed)
    assert all(t.weights["general"] <= 0.5 for t in store.trials(search.id))


def _drive_until_killed(url: str, search_id: int) -> None:
    store = Store.open(url)
    run_search(store, store.get_search(search_id), LocalPool(AnalyticEvaluator(delay_s=0.4)))


@pytest.mark.slow
def test_killed_search_resumes_to_exactly_n_distinct_trials(store, tiny_config):
    search = _search(store, tiny_config, 10)
    context = multiprocessing.get_context("spawn")
    driver = context.Process(target=_drive_until_killed, args=(store.url, search.id))
    driver.start()
    deadline = time.monotonic() + 240  # a spawned driver imports torch and Optuna: slow on a loaded machine
    while len(store.trials(search.id)) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    driver.kill()  # SIGKILL: no cleanup, a trial is left RUNNING
    driver.join()
    finished_before = {t.number for t in store.trials(search.id)}
    assert 4 <= len(finished_before) < 10, (finished_before, driver.exitcode)

    outcome = run_search(store, store.get_search(search.id), LocalPool(AnalyticEvaluator()))
    trials = store.trials(search.id)
    assert outcome.completed == 10 and len(trials) == 10
    assert len({t.number for t in trials}) == 10
    assert finished_before <= {t.number for t in trials}
    assert store.trials(search.id, state="running") == []


def test_a_trial_killed_before_its_first_heartbeat_is_retried(store, tiny_config):
    """A driver killed between ``study.ask()`` and its first beat leaves a RUNNING trial
    Optuna never finds stale; the resume must not wait on it for ever (a CI run did)."""
    from dmo.search.study import open_study

    search = _search(store, tiny_config, 3)
    orphan = open_study(store.url, search.study_name, search.config).ask()  # no heartbeat, ever
    outcome = run_search(store, search, LocalPool(AnalyticEvaluator()))
    assert (outcome.completed, outcome.status) == (3, "finished")
    study = open_study(store.url, search.study_name, search.config)
    assert study.trials[orphan.number].state.name == "FAIL"
    assert store.trials(search.id, state="running") == []


def test_pareto_front_keeps_exactly_the_non_dominated_points():
    from dmo.search.objectives import pareto_front

    points = [(50, 10), (40, 30), (45, 5), (40, 30), (30, 35), (20, 20)]
    assert pareto_front(points) == [0, 1, 3, 4]


def test_multi_objective_search_records_mean_and_worst(store, tiny_config):
    from dmo.search.objectives import pareto_front

    search = _search(store, tiny_config, 6, search__objective={"kind": "multi"})
    config = search.config
    outcome = run_search(store, search, LocalPool(AnalyticEvaluator()))
    assert outcome.completed == 6
    trials = store.trials(search.id)
    for trial in trials:
        scores = [trial.scores[d] for d in config.domain_names]
        assert trial.objective[0] == pytest.approx(sum(scores) / len(scores))
        assert trial.objective[1] == pytest.approx(min(scores))
    front = set(pareto_front([t.objective for t in trials]))
    means, worsts = [t.objective[0] for t in trials], [t.objective[1] for t in trials]
    assert means.index(max(means)) in front and worsts.index(max(worsts)) in front
    for i, trial in enumerate(trials):  # a trial is on the front exactly when nothing beats it on both
        beaten = any(o.objective[0] >= trial.objective[0] and o.objective[1] >= trial.objective[1]
                     and o.objective != trial.objective for o in trials)
        assert (i in front) == (not beaten)


def test_pruning_stops_weak_trials_after_the_subset(store, tiny_config):
    evaluator = AnalyticEvaluator()
    limits = []
    original = evaluator.evaluate

    def recording(weights, *, limit=None):
        limits.append(limit)
        return original(weights, limit=limit)

    evaluator.evaluate = recording
    search = _search(store, tiny_config, 14, search__pruning={"enabled": True, "subset": 4}, search__sampler="random")
    outcome = run_search(store, search, LocalPool(evaluator))
    assert outcome.completed + outcome.pruned == 14
    assert outcome.pruned >= 1
    assert limits.count(4) == 14  # every trial is probed on the subset first
    assert limits.count(None) == outcome.completed  # only survivors see the full set
    assert len(store.trials(search.id, state="pruned")) == outcome.pruned



def test_pruning_a_multi_objective_search_is_refused_in_the_config(tiny_config):
    # Optuna's Trial.report raises NotImplementedError for several objectives: the first pruning
    # probe would crash the search minutes in, instead of the config at load.
    from dmo.errors import ConfigError

    with pytest.raises(ConfigError, match="pruning compares one objective value"):
        configured(tiny_config, search__pruning={"enabled": True}, search__objective={"kind": "multi"},
                   search__sampler="random")

def test_a_grid_search_longer_than_its_grid_stops_instead_of_repeating_points(store):
    from search_support import project_config

    from dmo.search.grid import grid_size

    config = project_config(("a", "b"), search__sampler="grid", search__warm_start=["grid"], search__evaluators=1)
    points = grid_size(2)  # 9 mixtures of two domains on the 1/8 grid
    search = _search(store, config, points + 5)
    evaluator = AnalyticEvaluator2()
    outcome = run_search(store, search, LocalPool(evaluator))
    trials = store.trials(search.id)
    assert outcome.status == "finished" and outcome.completed == points == len(trials)
    assert "only 9 distinct points" in outcome.note
    assert len({tuple(round(w, 9) for w in t.weights.values()) for t in trials}) == points
    assert store.get_search(search.id).status == "finished"


class AnalyticEvaluator2:
    def run(self, request):
        return self.evaluate(request.weights)

    def evaluate(self, weights, *, limit=None):
        scores = {"a": 100 * weights[0], "b": 100 * weights[1]}
        return ProxyResult(scores={"exact_match": scores, "likelihood": scores}, samples=2, merge_seconds=0.0,
                           eval_seconds=0.0, routing={})


def test_a_mixture_proposed_again_is_told_its_earlier_result_without_scoring_it_again(store, tiny_config):
    """A sampler that converges on a vertex asks for it over and over (the video demo's GP asked for
    w = general 1.0 fourteen times): a proxy is deterministic, so each repeat costs no evaluation."""
    from dmo.search.study import open_study

    config = configured(tiny_config, search__trials=6, search__warm_start=[])
    search = search_row(store, config)
    study = open_study(store.url, search.study_name, config)
    for _ in range(4):  # the same point four times, then whatever the sampler picks
        study.enqueue_trial({"u0": 0.5, "u1": 0.5}, skip_if_exists=False)
    evaluator = AnalyticEvaluator()
    outcome = run_search(store, search, LocalPool(evaluator))
    trials = sorted(store.trials(search.id), key=lambda t: t.number)
    assert outcome.completed == 6 and evaluator.calls == 3  # one for the repeated point, two for the rest
    repeated = [t for t in trials if t.weights == trials[0].weights]
    assert len(repeated) == 4 and len({t.objective[0] for t in repeated}) == 1


class _DriverDied(BaseException):
    """Stands in for a SIGKILL at one exact instruction of the driver."""


class _DyingJournal:
    """The store's journal, with the driver dying around the write of one trial's result."""

    def __init__(self, journal, *, at_result: int, writes_first: bool):
        self.journal, self.at_result, self.writes_first = journal, at_result, writes_first
        self.results = 0

    def record(self, outcome):
        if outcome.state == "running":
            return self.journal.record(outcome)
        self.results += 1
        if self.results == self.at_result:
            if self.writes_first:
                self.journal.record(outcome)
            raise _DriverDied
        return self.journal.record(outcome)


@pytest.mark.parametrize("writes_first", [False, True], ids=["before-the-row", "after-the-row"])
def test_a_driver_dying_between_optuna_and_the_store_resumes_with_both_agreeing(store, tiny_config, writes_first):
    """A driver killed between telling a trial's result to Optuna and writing it to the store must
    not leave the two disagreeing: a CI run's resume reported "finished" with 7 of its 8 trials
    complete in the store (Optuna counted the eighth complete; its row stayed `running`)."""
    from optuna.trial import TrialState

    from dmo.search.driver import SearchPlan, drive
    from dmo.search.searches import StoreJournal
    from dmo.search.study import open_study

    search = _search(store, tiny_config, 6)
    study = open_study(store.url, search.study_name, search.config)
    dying = _DyingJournal(StoreJournal(store, search), at_result=3, writes_first=writes_first)
    with pytest.raises(_DriverDied):
        drive(study, LocalPool(AnalyticEvaluator()), SearchPlan.of(search.config), dying)

    outcome = run_search(store, store.get_search(search.id), LocalPool(AnalyticEvaluator()))
    assert (outcome.status, outcome.completed) == ("finished", 6)
    rows = store.trials(search.id)
    assert len(rows) == 6 and store.trials(search.id, state="running") == []
    told = {t.number: t for t in open_study(store.url, search.study_name, search.config).trials}
    assert sorted(n for n, t in told.items() if t.state == TrialState.COMPLETE) == sorted(r.number for r in rows)
    for row in rows:
        assert told[row.number].values == pytest.approx(list(row.objective))
