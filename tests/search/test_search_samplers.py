from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest

from dmo.errors import SearchError
from dmo.search.grid import simplex_grid
from dmo.config import names
from dmo.config.names import MULTI_OBJECTIVE_SAMPLERS
from dmo.search.samplers import (
    SAMPLERS,
    SimplexGridSampler,
    enqueue_warm_start,
    make_sampler,
    suggest_mixture,
)
from dmo.search.simplex import u_to_weights

optuna.logging.set_verbosity(optuna.logging.WARNING)

DOMAINS = ["general", "ocr", "counting"]
TARGET = np.array([0.6, 0.3, 0.1])
# Past TPE's and GP's 10 startup trials, so their models propose too.
TRIALS = {"tpe": 14, "gp": 12, "cmaes": 14, "qmc": 14, "random": 14, "grid": 14}


def suggest_weights(trial: optuna.Trial, domains: list[str]) -> np.ndarray:
    return np.asarray(suggest_mixture(trial, domains).weights)


def test_the_registry_offers_exactly_the_names_configs_are_checked_against() -> None:
    assert tuple(SAMPLERS) == names.SAMPLERS
    assert set(MULTI_OBJECTIVE_SAMPLERS) <= set(SAMPLERS)


def _closeness(trial: optuna.Trial) -> float:
    return -float(np.sum((suggest_weights(trial, DOMAINS) - TARGET) ** 2))


def _run(name: str, seed: int, n_trials: int, domains: list[str] = DOMAINS) -> optuna.Study:
    sampler = make_sampler(name, seed=seed, num_domains=len(domains))
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(_closeness, n_trials=n_trials)
    return study


def _weights(study: optuna.Study) -> np.ndarray:
    return np.array([[t.user_attrs["weights"][d] for d in DOMAINS] for t in study.trials])


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_same_seed_same_weights_other_seed_other_weights(name: str) -> None:
    first = _weights(_run(name, seed=7, n_trials=TRIALS[name]))
    again = _weights(_run(name, seed=7, n_trials=TRIALS[name]))
    other = _weights(_run(name, seed=8, n_trials=TRIALS[name]))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_proposes_mixtures_on_the_simplex(name: str) -> None:
    study = _run(name, seed=0, n_trials=12)
    weights = _weights(study)
    assert weights.shape == (12, 3)
    assert np.all(weights >= 0.0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    # The stored weights are the image of the stored u's.
    for trial, w in zip(study.trials, weights):
        assert sorted(trial.params) == ["u0", "u1"]
        assert all(0.0 <= v <= 1.0 for v in trial.params.values())
        np.testing.assert_allclose(u_to_weights([trial.params["u0"], trial.params["u1"]]), w)


def test_grid_sampler_yields_exactly_the_eighth_grid_once_then_cycles() -> None:
    grid = simplex_grid(3)
    study = optuna.create_study(sampler=make_sampler("grid", seed=0, num_domains=3))
    sampler = study.sampler
    assert isinstance(sampler, SimplexGridSampler)
    seen = []
    for _ in range(len(grid)):
        assert not sampler.is_exhausted(study)
        trial = study.ask()  # the lead's driver uses ask/tell, not optimize
        seen.append(suggest_weights(trial, DOMAINS))
        study.tell(trial, 0.0)
    assert sampler.is_exhausted(study)
    seen_arr = np.array(seen)
    # Each grid point matched by exactly one proposal, to 1e-9.
    distance = np.abs(seen_arr[:, None, :] - grid[None, :, :]).max(axis=2)
    matches = distance < 1e-9
    assert np.all(matches.sum(axis=1) == 1) and np.all(matches.sum(axis=0) == 1)
    # The seeded order is not the lexicographic one, and the grid restarts in the same order.
    assert not np.allclose(seen_arr, grid)
    trial = study.ask()
    np.testing.assert_allclose(suggest_weights(trial, DOMAINS), seen_arr[0], atol=1e-12)


def test_grid_sampler_skips_points_a_grid_warm_start_already_holds() -> None:
    study = optuna.create_study(sampler=make_sampler("grid", seed=0, num_domains=3))
    assert enqueue_warm_start(study, DOMAINS, kinds=("grid",)) == 45
    study.optimize(_closeness, n_trials=45)
    weights = _weights(study)
    assert len({tuple(np.round(w, 9)) for w in weights}) == 45
    assert study.sampler.is_exhausted(study)


def test_warm_start_enqueues_uniform_first_and_only_once() -> None:
    study = optuna.create_study(sampler=make_sampler("tpe", seed=0, num_domains=4))
    domains = ["a", "b", "c", "d"]
    assert enqueue_warm_start(study, domains) == 1
    assert enqueue_warm_start(study, domains) == 0  # resuming does not duplicate
    trial = study.ask()
    np.testing.assert_allclose(suggest_weights(trial, domains), 0.25, atol=1e-12)
    assert trial.user_attrs["warm_start"] == "uniform"


def test_grid_warm_start_goes_coarse_to_fine_and_skips_the_uniform_duplicate() -> None:
    study = optuna.create_study(sampler=make_sampler("random", seed=0, num_domains=4))
    domains = ["a", "b", "c", "d"]
    # Uniform (1/4 each) is on the 1/8 grid for four domains: enqueued once.
    assert enqueue_warm_start(study, domains, kinds=("uniform", "grid")) == 165
    first = [suggest_weights(study.ask(), domains) for _ in range(5)]
    np.testing.assert_allclose(first[0], 0.25)
    for vertex in first[1:]:
        assert sorted(vertex.round(12).tolist()) == [0.0, 0.0, 0.0, 1.0]


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(SearchError) as info:
        make_sampler("bayes", seed=0, num_domains=3)
    assert info.value.where == "search.sampler"
    for known in SAMPLERS:
        assert known in str(info.value)
    study = optuna.create_study()
    with pytest.raises(SearchError, match="uniform, grid"):
        enqueue_warm_start(study, DOMAINS, kinds=("dirichlet",))


def test_cmaes_is_single_objective_only() -> None:
    with pytest.raises(SearchError, match="single objective"):
        make_sampler("cmaes", seed=0, num_domains=3, multi_objective=True)


@pytest.mark.parametrize("name", MULTI_OBJECTIVE_SAMPLERS)
def test_multi_objective_samplers_run_two_objectives(name: str) -> None:
    sampler = make_sampler(name, seed=0, num_domains=3, multi_objective=True)
    study = optuna.create_study(sampler=sampler, directions=["maximize", "maximize"])

    def two(trial: optuna.Trial) -> tuple[float, float]:
        w = suggest_weights(trial, DOMAINS)
        return float(w.mean()), float(w.min())

    study.optimize(two, n_trials=11)
    assert len(study.trials) == 11
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_one_domain_is_not_a_search() -> None:
    with pytest.raises(SearchError, match="at least two domains"):
        make_sampler("tpe", seed=0, num_domains=1)


def test_qmc_builds_without_an_experimental_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_sampler("qmc", seed=0, num_domains=3)


def test_tpe_finds_a_better_mixture_than_its_random_start() -> None:
    study = _run("tpe", seed=0, n_trials=40)
    values = [t.value for t in study.trials]
    assert max(values[10:]) > max(values[:10])
