"""The repository API on every backend: cache hits, idempotent trials, ranking, validation."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from datetime import UTC
from typing import Any

import pytest

from dmo.errors import MergeError, SearchError, StoreError
from dmo.mixture import Mixture
from search_support import mixture
from storage import ModelRecord, SearchRecord, Store, TrialRecord, to_json

MakeSearch = Callable[..., SearchRecord]


def _model(store: Store, config_hash: str, **fields: Any) -> ModelRecord:
    values: dict[str, Any] = {
        "kind": "base", "domain": None, "base_id": None, "training": {}, "finetune": "full",
        "efficiency": {},
    }
    values.update(fields)
    return store.start_model(config_hash=config_hash, **values)


def _trial(
    store: Store, search_id: int, number: int, value: float | None, **fields: Any
) -> TrialRecord:
    values: dict[str, Any] = {
        "mixture": mixture(a=0.5, b=0.25, c=0.25), "merge_method": "task_arithmetic",
        "params": {"u0": 0.1}, "scores": {"a": 50.0, "b": 40.0},
        "objective": [] if value is None else [value], "state": "complete", "duration_s": 1.5,
    }
    values.update(fields)
    return store.record_trial(search_id=search_id, number=number, **values)


# --------------------------------------------------------------------------- datasets and models


def test_finished_model_is_a_cache_hit_by_config_hash(store: Store) -> None:
    efficiency = {
        "schedule": "prd_shifted_cosine", "retention": [1, 1, 0.5], "tanh_alpha": 0.2,
        "tanh_beta": 1.0,
    }
    started = _model(store, "cfg-1", training={"lr": 1e-3}, efficiency=efficiency)
    assert started.status == "running"
    assert store.find_model("cfg-1") is None  # running is not a hit
    assert _model(store, "cfg-1", efficiency=efficiency).id == started.id  # a retry reuses it

    done = store.finish_model(
        started.id, checkpoint_uri="/ckpt/base", checkpoint_sha256="ab" * 32,
        metrics={"loss": 0.5}, duration_s=12.0,
        efficiency={"flops_ratio": 0.556, "kv_ratio": 0.538},
    )
    hit = store.find_model("cfg-1")
    assert hit == done
    assert hit.status == "finished" and hit.checkpoint_uri == "/ckpt/base"
    assert hit.efficiency == {**efficiency, "flops_ratio": 0.556, "kv_ratio": 0.538}
    assert (hit.mod_schedule, hit.flops_ratio, hit.kv_ratio) == ("prd_shifted_cosine", 0.556, 0.538)
    assert hit.training == {"lr": 1e-3}
    assert store.find_model("cfg-other") is None
    # starting the same config again does not train twice
    assert _model(store, "cfg-1").status == "finished"
    assert len(store.list_models()) == 1


def test_failed_model_restarts_as_a_new_attempt(store: Store) -> None:
    model = _model(store, "e1", kind="expert", domain="ocr", finetune="lora")
    store.fail_model(model.id, "out of memory")
    failed = store.get_model(model.id)
    assert (failed.status, failed.error) == ("failed", "out of memory")
    retried = _model(store, "e1", kind="expert", domain="ocr", training={"steps": 2})
    assert (retried.id, retried.status, retried.attempts) == (model.id, "running", 2)
    assert retried.error is None and retried.training == {"steps": 2}


def test_expert_links_to_its_base_and_unknown_base_is_refused(store: Store) -> None:
    base = _model(store, "b")
    expert = _model(store, "x", kind="expert", domain="ocr", base_id=base.id)
    assert expert.base_id == base.id
    assert [m.id for m in store.list_models(kind="expert")] == [expert.id]
    with pytest.raises(StoreError, match="no model with id 999"):
        _model(store, "y", kind="expert", domain="ocr", base_id=999)
    with pytest.raises(ValueError, match="known: base, expert, mixture"):
        _model(store, "z", kind="teacher")


def test_timestamps_are_timezone_aware_utc(store: Store) -> None:
    model = _model(store, "t")
    stored = store.get_model(model.id)
    assert stored.created_at.tzinfo is UTC
    assert stored.created_at == model.created_at


# --------------------------------------------------------------------------- searches and trials


def test_search_keeps_its_experts_in_order_and_study_names_are_unique(
    store: Store, make_search: MakeSearch
) -> None:
    search = make_search(expert_ids=[])
    experts = [m.id for m in store.list_models()]
    ordered = make_search(name="second", expert_ids=list(reversed(experts)))
    assert store.get_search(ordered.id).expert_ids == tuple(reversed(experts))
    with pytest.raises(SearchError, match="already belongs to search"):
        make_search(study_name=search.study_name)
    with pytest.raises(SearchError, match="no search with id 12345"):
        store.get_search(12345)
    store.set_search_status(search.id, "finished")
    finished = store.get_search(search.id)
    assert finished.status == "finished" and finished.finished_at is not None


def test_recording_a_trial_twice_is_idempotent(store: Store, make_search: MakeSearch) -> None:
    search = make_search()
    first = _trial(store, search.id, 0, 61.0)
    again = _trial(store, search.id, 0, 61.0)
    assert again == first
    # a complete trial keeps its first result; resume never rewrites or duplicates it
    rewritten = _trial(store, search.id, 0, 99.0)
    assert rewritten.value == 61.0
    assert len(store.trials(search.id, state=None)) == 1


def test_running_trial_is_replaced_by_its_result(store: Store, make_search: MakeSearch) -> None:
    search = make_search()
    running = _trial(store, search.id, 3, None, state="running", scores={})
    done = _trial(store, search.id, 3, 70.0, routing={"layer_3": 0.5},
                  efficiency={"flops_ratio": 0.6})
    assert done.id == running.id
    assert (done.state, done.value) == ("complete", 70.0)
    assert done.routing == {"layer_3": 0.5} and done.efficiency == {"flops_ratio": 0.6}
    assert store.trial_counts(search.id) == {"complete": 1}


def test_trial_for_a_missing_search_is_refused(store: Store) -> None:
    with pytest.raises(SearchError, match="no search with id 77"):
        _trial(store, 77, 0, 1.0)


def test_best_trials_rank_by_first_objective(store: Store, make_search: MakeSearch) -> None:
    search = make_search()
    for number, value in enumerate([50.0, 70.0, 60.0, 70.0, 10.0]):
        _trial(store, search.id, number, value)
    _trial(store, search.id, 5, 99.0, state="pruned")  # never ranked
    _trial(store, search.id, 6, float("nan"))  # NaN is stored as "no value"
    best = store.best_trials(search.id, top_k=3)
    assert [(t.number, t.value) for t in best] == [(1, 70.0), (3, 70.0), (2, 60.0)]
    worst_first = store.best_trials(search.id, top_k=2, direction="minimize")
    assert [t.number for t in worst_first] == [4, 0]
    assert store.trials(search.id)[-1].objective == (None,)
    assert math.isclose(sum(best[0].weights.values()), 1.0)


def test_the_snapshot_is_parsed_back_typed_and_gives_the_direction(
    store: Store, make_search: MakeSearch
) -> None:
    search = make_search(search__objective={"kind": "multi"}, search__sampler="random")
    stored = store.get_search(search.id)
    assert stored.snapshot == search.snapshot and stored.config.search.sampler == "random"
    assert stored.snapshot.objective_names == ("mean", "worst")
    assert stored.snapshot.directions == ("maximize", "maximize") and stored.direction == "maximize"
    assert stored.trials_target == 4 and stored.metric == "exact_match"
    for number, value in enumerate([3.0, 1.0, 2.0]):
        _trial(store, search.id, number, value)
    assert [t.number for t in store.best_trials(search.id, top_k=1)] == [0]


def test_a_snapshot_that_does_not_parse_is_a_store_error(store: Store, make_search: MakeSearch) -> None:
    import sqlalchemy as sa

    search = make_search()
    engine = sa.create_engine(store.url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE dmo_searches SET snapshot = :s WHERE id = :i"),
                               {"s": '{"version": 2, "config": {"domains": []}}', "i": search.id})
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match=f"snapshot of search {search.id} does not parse: config.domains"):
        store.get_search(search.id)


def test_non_json_values_are_converted_or_refused(store: Store, make_search: MakeSearch) -> None:
    search = make_search()
    trial = _trial(store, search.id, 0, 1.0, params={"u": (0.1, 0.2)}, scores={"a": float("inf")})
    assert trial.params == {"u": [0.1, 0.2]} and trial.scores == {"a": None}
    with pytest.raises(MergeError, match="non-negative"):
        _trial(store, search.id, 1, 1.0, mixture=mixture(a=-0.5, b=1.5))
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        _trial(store, search.id, 2, 1.0, params={"bad": object()})


# --------------------------------------------------------------------------- validation and recipes


def test_validation_keeps_one_result_per_mixture(store: Store, make_search: MakeSearch) -> None:
    search = make_search()
    trial = _trial(store, search.id, 0, 60.0)
    older = store.create_validation(search.id, config={"mixtures": 2})
    validation = store.create_validation(search.id, config={"mixtures": 2})

    def result(weights: dict[str, float], real: float, trial_id: int | None) -> None:
        store.record_mixture_result(validation.id, mixture=Mixture.of(["a", "b"], weights), trial_id=trial_id,
                                    model_id=None, proxy_scores={"a": 1.0}, real_scores={"a": real})

    result({"a": 0.5, "b": 0.5}, 2.0, trial.id)
    result({"b": 0.5, "a": 0.5}, 3.0, trial.id)  # the same mixture: replaces the result
    result({"a": 1.0, "b": 0.0}, 0.0, None)
    assert store.latest_validation(search.id, finished_only=True) is None
    store.finish_validation(validation.id, summary={"spearman": 0.8, "kendall": 0.6, "regret": 1.5})
    store.fail_validation(older.id, "interrupted")
    latest = store.latest_validation(search.id)
    assert latest is not None and latest.id == validation.id and latest.status == "finished"
    assert latest.summary["spearman"] == 0.8
    assert [r.real_scores["a"] for r in latest.results] == [3.0, 0.0]
    assert store.latest_validation(search.id, finished_only=True) == latest
    assert [v.id for v in store.validations(search.id)] == [older.id, validation.id]  # oldest first
    assert store.validations(search.id, finished_only=True) == [latest]  # the failed one is never fitted on


def test_a_recipe_row_names_its_search_and_trial(store: Store, make_search: MakeSearch) -> None:
    search = make_search()
    trial = _trial(store, search.id, 0, 60.0)
    recipe = store.record_recipe(search_id=search.id, trial_id=trial.id, fmt="llamafactory",
                                 path="/out/dataset_info.json", sha256="0" * 64, budget=102_400)
    assert (recipe.search_id, recipe.trial_id, recipe.budget) == (search.id, trial.id, 102_400)
    with pytest.raises(SearchError, match="no search with id 999"):
        store.record_recipe(search_id=999, trial_id=None, fmt="json", path="/x", sha256="1" * 64, budget=None)


# --------------------------------------------------------------------------- handles


def test_store_pickles_into_a_handle_on_the_same_database(
    store: Store, make_search: MakeSearch
) -> None:
    search = make_search()
    clone = pickle.loads(pickle.dumps(store))
    try:
        assert clone.url == store.url and clone.get_search(search.id) == search
    finally:
        clone.dispose()


def test_records_serialise_to_json(store: Store, make_search: MakeSearch) -> None:
    search = make_search()
    data = to_json(search)
    assert data["domains"] == ["a", "b", "c"] and isinstance(data["created_at"], str)
    assert data["created_at"].endswith("+00:00")


# --------------------------------------------------------------------------- training claims


def test_a_model_is_claimed_by_one_trainer_and_taken_over_only_when_it_goes_silent(store: Store) -> None:
    first = _model(store, "claimed", claim="A", stale_after_s=60)
    assert first.claim_token == "A" and first.heartbeat_at is not None
    second = _model(store, "claimed", claim="B", stale_after_s=60)
    assert second.claim_token == "A" and second.attempts == 1  # B must wait for A
    assert store.beat_model(first.id, "A") and not store.beat_model(first.id, "B")
    taken = _model(store, "claimed", claim="B", stale_after_s=0.0)  # A went silent
    assert (taken.claim_token, taken.attempts) == ("B", 2)
    assert not store.beat_model(first.id, "A")  # A learns it lost the claim
    with pytest.raises(StoreError, match="being trained by another process"):
        store.finish_model(first.id, checkpoint_uri="/a", checkpoint_sha256="a" * 64, metrics={},
                           duration_s=1.0, claim="A")
    store.fail_model(first.id, "A's late failure", claim="A")  # ignored: not A's any more
    assert store.get_model(first.id).status == "running"
    done = store.finish_model(first.id, checkpoint_uri="/b", checkpoint_sha256="b" * 64, metrics={},
                              duration_s=1.0, claim="B")
    assert done.status == "finished" and done.checkpoint_uri == "/b"
    assert _model(store, "claimed", claim="C", stale_after_s=0.0).claim_token == "B"  # finished: kept
    again = _model(store, "claimed", claim="C", retrain=True)  # its checkpoint is gone: train again
    assert (again.status, again.claim_token, again.attempts) == ("running", "C", 3)
