"""Subset scoring (issue 20, item 2): anchors chosen once from the base and the experts, trials scored
on them only, the best rescored on every sample."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from search_support import configured

from dmo.search.anchors import anchor_count, disagreement_anchors, random_anchors, stratified_anchors

# --------------------------------------------------------------------------- choosing anchors (pure)


def test_anchors_are_the_samples_the_models_disagree_on_most():
    #              sample: 0  1  2  3  4  5
    credit = {"b": [[1, 1, 0, 1, 0, 0.5],
                    [1, 0, 0, 1, 1, 0.5],
                    [1, 0, 0, 0, 1, 0.5],
                    [1, 1, 0, 0, 0, 0.5]]}
    # spreads: 0, .25, 0, .25, .25, 0 -> the three disagreeing samples, whatever the seed
    assert disagreement_anchors(credit, 0.5, 0) == {"b": (1, 3, 4)}
    assert disagreement_anchors(credit, 0.5, 9) == {"b": (1, 3, 4)}


def test_past_the_disagreeing_samples_the_rest_are_drawn_at_random_and_reproducibly():
    credit = {"b": [[1, 0] + [1] * 38, [0, 1] + [1] * 38]}  # two disagreeing samples out of 40
    first = disagreement_anchors(credit, 0.25, 3)["b"]
    assert len(first) == 10 and {0, 1} <= set(first)
    assert disagreement_anchors(credit, 0.25, 3)["b"] == first
    draws = {disagreement_anchors(credit, 0.25, s)["b"] for s in range(6)}
    assert len(draws) > 1  # the filler depends on the seed


def test_stratified_anchors_give_each_group_of_equal_reference_credit_its_share():
    rng = np.random.default_rng(0)
    # 3 reference models on 200 samples: 100 all right, 60 all wrong, 40 split 2-1
    right = np.ones((3, 100))
    wrong = np.zeros((3, 60))
    split = np.array([[1, 1, 0]] * 40).T
    table = np.concatenate([right, wrong, split], axis=1)[:, rng.permutation(200)]
    credit = {"b": table.tolist()}
    for seed in range(5):
        chosen = stratified_anchors(credit, 0.25, seed)["b"]
        assert len(chosen) == 50 == len(set(chosen))
        totals = table.sum(axis=0)[list(chosen)]
        assert [int((totals == k).sum()) for k in (3, 0, 2)] == [25, 15, 10]  # 100, 60, 40 samples → 50 anchors
    assert stratified_anchors(credit, 0.25, 1) == stratified_anchors(credit, 0.25, 1)
    assert stratified_anchors(credit, 0.25, 1) != stratified_anchors(credit, 0.25, 2)


def test_stratified_anchors_round_by_largest_remainders_to_the_exact_count():
    credit = {"b": [[1] * 7 + [0] * 5 + [0.5] * 3]}  # strata of 7, 5 and 3 samples; 40 % → 6 anchors
    chosen = stratified_anchors(credit, 0.4, 0)["b"]
    assert len(chosen) == anchor_count(15, 0.4) == 6
    by_stratum = [sum(1 for i in chosen if lo <= i < hi) for lo, hi in ((0, 7), (7, 12), (12, 15))]
    assert by_stratum == [3, 2, 1]  # quotas 2.8, 2.0, 1.2 → 2, 2, 1 and the largest remainder (0.8) to the first


def test_random_anchors_are_a_seeded_draw_of_each_benchmark_on_its_own():
    sizes = {"a": 40, "b": 7}
    anchors = random_anchors(sizes, 0.25, 0)
    assert {name: len(i) for name, i in anchors.items()} == {"a": 10, "b": 2}
    assert all(list(i) == sorted(set(i)) and max(i) < sizes[n] for n, i in anchors.items())
    assert random_anchors(sizes, 0.25, 0) == anchors
    assert len({random_anchors(sizes, 0.25, s)["a"] for s in range(6)}) > 1
    assert random_anchors({"a": 40}, 0.25, 0)["a"] == anchors["a"]  # another benchmark moves nothing
    with pytest.raises(ValueError, match="benchmark b: no samples"):
        random_anchors({"b": 0}, 0.25, 0)


@pytest.mark.parametrize(("size", "fraction", "count"), [(200, 0.25, 50), (7, 0.25, 2), (3, 0.01, 1), (5, 1.0, 5),
                                                          (100, 0.29, 29)])
def test_an_anchor_subset_holds_the_ceiling_of_its_fraction(size, fraction, count):
    assert anchor_count(size, fraction) == count == max(1, math.ceil(round(fraction * size, 9)))


def test_anchor_choice_refuses_too_little_to_choose_from():
    with pytest.raises(ValueError, match="at least 2 model"):
        disagreement_anchors({"b": [[1, 0, 1]]}, 0.5, 0)
    with pytest.raises(ValueError, match="fraction"):
        anchor_count(10, 0.0)


# --------------------------------------------------------------------------- scoring a subset


def test_a_subset_is_scored_from_its_own_samples_only_and_agrees_with_per_sample_credit(
    tiny_config, tiny_models, tiny_data, monkeypatch
):
    from dmo.evaluation import evaluate, scoring
    from dmo.evaluation.benchmarks import benchmarks_for
    from dmo.models.backends import backend_for

    backend = backend_for(tiny_config)
    _, experts = tiny_models
    model = backend.load(Path(experts["ocr"].checkpoint_uri))
    benchmarks = benchmarks_for(tiny_config.domain_names, "dev")
    full = evaluate(model, tiny_data, benchmarks, backend=backend, per_sample=True)
    subsets = {b.name: tuple(range(1, len(tiny_data.domains[b.name].dev), 3)) for b in benchmarks}
    touched: list[tuple[int, ...]] = []
    for name in ("prompt_batch", "training_batch"):
        original = getattr(scoring, name)
        monkeypatch.setattr(scoring, name, lambda split, indices, pad, _f=original: (
            touched.append(tuple(indices)), _f(split, indices, pad))[1])
    subset = evaluate(model, tiny_data, benchmarks, backend=backend, subsets=subsets, batch_size=4)
    allowed = set().union(*map(set, subsets.values()))
    assert touched and all(set(batch) <= allowed for batch in touched)
    for benchmark in benchmarks:
        credit = full.benchmarks[benchmark.name].credit
        chosen = list(subsets[benchmark.name])
        assert subset.benchmarks[benchmark.name].samples == len(chosen)
        for metric in ("exact_match", "likelihood"):
            expected = 100.0 * float(np.mean([credit[metric][i] for i in chosen]))
            assert getattr(subset.benchmarks[benchmark.name], metric) == pytest.approx(expected, abs=1e-6)
        assert full.benchmarks[benchmark.name].exact_match == pytest.approx(100.0 * float(np.mean(credit["exact_match"])))


# --------------------------------------------------------------------------- a search on anchors


@pytest.mark.parametrize(("rule", "references"), [("random", 0), ("disagreement", 4)])
def test_a_search_scores_trials_on_its_anchors_only_and_rescores_the_best_on_every_sample(
    rule, references, tiny_config, tiny_store, tiny_models, tiny_data, monkeypatch
):
    from dmo.evaluation import scoring
    from dmo.search.driver import SearchPlan
    from dmo.search.objectives import objective_values
    from dmo.search.pool import LocalPool
    from dmo.search.proxy import ProxyEvaluator
    from dmo.search.searches import create_search, proxy_source, run_search

    base, experts = tiny_models
    config = configured(tiny_config, search__trials=5,
                        search__anchors={"fraction": 0.4, "rescore_top": 2, "rule": rule})
    search = create_search(tiny_store, config, base=base, experts=experts)
    evaluator = ProxyEvaluator(proxy_source(tiny_store, search), data=tiny_data)
    calls: list[tuple[str, tuple[int, ...]]] = []
    original = scoring._chosen
    monkeypatch.setattr(scoring, "_chosen", lambda name, *a: calls.append((name, tuple(original(name, *a)))) or
                        list(calls[-1][1]))
    outcome = run_search(tiny_store, search, LocalPool(evaluator))
    assert outcome.status == "finished" and outcome.completed == 5

    stored = tiny_store.get_search(search.id)
    sizes = {d: len(tiny_data.domains[d].dev) for d in config.domain_names}
    limit = config.evaluation.dev_limit
    full = {d: tuple(range(min(sizes[d], limit or sizes[d]))) for d in config.domain_names}
    assert stored.anchors is not None
    assert {d: len(i) for d, i in stored.anchors.items()} == {d: anchor_count(len(full[d]), 0.4) for d in full}
    if rule == "random":  # drawn from the sizes alone, as the rule draws them from any credit of those sizes
        assert stored.anchors == random_anchors({d: len(i) for d, i in full.items()}, 0.4, config.search.seed)

    # for `disagreement` the base and the 3 experts in full (`random` scores no reference model), then every trial on the anchors only,
    # then the best 2 in full again
    per_eval = len(config.domain_names)
    phases = [tuple(calls[i : i + per_eval]) for i in range(0, len(calls), per_eval)]
    full_eval = tuple((d, full[d]) for d in config.domain_names)
    anchor_eval = tuple((d, stored.anchors[d]) for d in config.domain_names)
    assert phases == [full_eval] * references + [anchor_eval] * 5 + [full_eval] * 2

    trials = tiny_store.trials(search.id)
    assert all(t.efficiency["samples"] == sum(map(len, stored.anchors.values())) for t in trials)
    ranked_by_anchor = sorted(trials, key=lambda t: (-t.value, t.number))
    rescored = [t for t in trials if t.full_value is not None]
    assert {t.number for t in rescored} == {t.number for t in ranked_by_anchor[:2]}
    plan = SearchPlan.of(config)
    for trial in rescored:  # the stored full value is the full-split objective of the same proxy
        again = evaluator.evaluate([trial.weights[d] for d in config.domain_names])
        assert trial.full_value == pytest.approx(objective_values(again.scores[plan.metric], plan.objective,
                                                                  plan.benchmarks)[0])
    best = tiny_store.best_trials(search.id, top_k=5)
    assert [t.full_value is not None for t in best] == [True, True, False, False, False]
    assert best[0].full_value >= best[1].full_value

    # resuming a finished search neither chooses new anchors nor pays for the rescore again
    calls.clear()
    run_search(tiny_store, tiny_store.get_search(search.id), LocalPool(evaluator))
    assert calls == []


@pytest.mark.parametrize(("fields", "message"), [
    ({"search__pruning": {"enabled": True}}, "enable one"),
    ({"search__objective": {"kind": "multi"}, "search__sampler": "random"}, "no single best"),
    ({"search__anchors": {"fraction": 1.5}}, "less than or equal to 1"),
    ({"search__anchors": {"rule": "hardest"}}, "unknown anchor rule 'hardest'"),
])
def test_anchor_settings_that_cannot_work_are_refused(tiny_config, fields, message):
    from dmo.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        configured(tiny_config, **{"search__anchors": {"fraction": 0.25}, **fields})


def test_an_anchor_subset_is_stored_once(tiny_store, tiny_config):
    from search_support import search_row

    from dmo.errors import StoreError

    search = search_row(tiny_store, tiny_config)
    tiny_store.set_search_anchors(search.id, {"general": [3, 1]})
    tiny_store.set_search_anchors(search.id, {"general": [1, 3]})  # the same again: a no-op
    with pytest.raises(StoreError, match="already has an anchor subset"):
        tiny_store.set_search_anchors(search.id, {"general": [2]})
    assert tiny_store.get_search(search.id).anchors == {"general": (1, 3)}


def test_reference_models_come_from_the_bank_and_match_the_stored_checkpoints(tiny_config, tiny_store, tiny_models,
                                                                              tiny_data):
    """An expert imported as a bare adapter has no full checkpoint to load: the bank writes each
    reference model instead (one-hot: an expert; zero weights: the base as the proxies see it, shaped
    like the experts, which need not be the stored base checkpoint's own routing)."""
    from dmo.evaluation import evaluate
    from dmo.search.pool import ProxyRequest
    from dmo.search.proxy import ProxyEvaluator
    from dmo.search.searches import create_search, proxy_source

    base, experts = tiny_models
    search = create_search(tiny_store, tiny_config, base=base, experts=experts)
    source = proxy_source(tiny_store, search)
    evaluator = ProxyEvaluator(source, data=tiny_data)
    base_credit = evaluator.credit_of(source.base_checkpoint).credit
    assert set(base_credit) == {b.name for b in evaluator.benchmarks}
    # what the random rule draws from, counted without scoring: the lengths of a full score's credit
    assert evaluator.run(ProxyRequest(sizes=True)).sizes == {name: len(c) for name, c in base_credit.items()}
    for path in source.expert_checkpoints:
        from_bank = evaluator.credit_of(path).credit
        evaluation = tiny_config.evaluation  # the same batches: only the weights' rounding may differ
        direct = evaluate(evaluator.backend.load(path), tiny_data, evaluator.benchmarks, backend=evaluator.backend,
                          per_sample=True, limit=evaluation.dev_limit, likelihood=False,
                          batch_size=evaluation.batch_size, max_new_tokens=evaluation.max_new_tokens)
        for name, score in direct.benchmarks.items():
            agree = np.mean(np.equal(from_bank[name], score.credit["exact_match"]))
            assert agree >= 0.95, (path, name, agree)
    with pytest.raises(Exception, match="neither this search's base nor one of its experts"):
        evaluator.credit_of(Path("/elsewhere"))


def test_a_search_whose_anchors_cannot_be_chosen_ends_failed_not_running(tiny_store, tiny_config):
    from search_support import search_row

    from dmo.errors import SearchError
    from dmo.search.pool import LocalPool
    from dmo.search.searches import run_search

    search = search_row(tiny_store, configured(tiny_config, search__anchors={"fraction": 0.5}))  # no base: no models
    with pytest.raises(SearchError):
        run_search(tiny_store, search, LocalPool(None))
    stored = tiny_store.get_search(search.id)
    assert stored.status == "failed" and "no base model" in stored.error


def test_the_config_knows_every_anchor_rule_by_name():
    from dmo.config import names
    from dmo.search.anchors import ANCHOR_RULES

    assert names.ANCHOR_RULES == tuple(ANCHOR_RULES)
