"""Optuna samplers over the stick-breaking box, picked by name.

Every sampler sees the same static space: K−1 floats ``u0 … u{K−2}`` in [0, 1]
that :func:`dmo.search.simplex.u_to_weights` maps onto the simplex. Because
that map sends the uniform cube to the uniform simplex, ``random`` (Optuna's
RandomSampler on u) draws exactly Dirichlet(1) mixtures, the reference study's
practice, and ``qmc`` draws a low-discrepancy cover of the simplex.

This is the only module of dmo.search that touches Optuna objects.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import BaseTrial, FrozenTrial, TrialState

from dmo.config import names
from dmo.errors import SearchError
from dmo.mixture import Mixture
from dmo.search.grid import DEFAULT_DENOMINATOR, coarse_to_fine_grid, simplex_grid
from dmo.search.simplex import u_to_weights, weights_to_u
from storage.optuna_trials import set_trial_system_attr

WEIGHTS_USER_ATTR = "weights"
WARM_START_USER_ATTR = "warm_start"
TPE_STARTUP_TRIALS = 10
_GRID_ID_ATTR = "dmo:grid_id"
_GRID_KEY_ATTR = "dmo:grid"


def u_param_names(num_domains: int) -> list[str]:
    """Names of the stick-breaking parameters of a K-domain search: u0 … u{K−2}."""
    return [f"u{i}" for i in range(num_domains - 1)]


def _check_num_domains(num_domains: int) -> None:
    if num_domains < 2:
        raise SearchError(
            f"a mixture search needs at least two domains, got {num_domains}",
            where="domains",
            hint="with one domain the only mixture is that domain",
        )


# --------------------------------------------------------------------------- grid sampler


class SimplexGridSampler(BaseSampler):
    """Proposes each point of the 1/denominator simplex grid once, in a seeded order.

    Optuna's GridSampler needs a Cartesian product per parameter, which the
    simplex is not; this sampler instead hands out the u-coordinates of the grid
    points. A point counts as taken once any trial holds it (waiting, running or finished),
    including enqueued trials whose fixed u's equal a grid point, so a grid
    warm start is not evaluated twice. When every point is taken it cycles
    through the same order again; the driver asks :meth:`is_exhausted` first and
    stops instead.
    """

    def __init__(self, num_domains: int, *, seed: int = 0, denominator: int = DEFAULT_DENOMINATOR):
        _check_num_domains(num_domains)
        self._num_domains = num_domains
        self._denominator = denominator
        self._param_names = u_param_names(num_domains)
        self.grid_weights = simplex_grid(num_domains, denominator)  # (n, K)
        self.grid_u = np.stack([weights_to_u(w) for w in self.grid_weights])  # (n, K−1)
        self._order = np.random.default_rng(seed).permutation(len(self.grid_weights)).tolist()
        self._id_of_u = {self._u_key(u): i for i, u in enumerate(self.grid_u)}
        self._grid_key = f"{num_domains}/{denominator}"

    @staticmethod
    def _u_key(u: Sequence[float]) -> tuple[float, ...]:
        return tuple(round(float(x), 12) for x in u)

    def _taken_grid_ids(self, study: Study) -> tuple[set[int], int]:
        """Grid ids held by any trial (enqueued ones too) and the count of trials assigned here."""
        taken: set[int] = set()
        assigned = 0
        for t in study.get_trials(deepcopy=False):
            if t.system_attrs.get(_GRID_KEY_ATTR) == self._grid_key:
                taken.add(int(t.system_attrs[_GRID_ID_ATTR]))
                assigned += 1
                continue
            params = t.params or t.system_attrs.get("fixed_params") or {}
            if all(name in params for name in self._param_names):
                grid_id = self._id_of_u.get(self._u_key([params[n] for n in self._param_names]))
                if grid_id is not None:
                    taken.add(grid_id)
        return taken, assigned

    def is_exhausted(self, study: Study) -> bool:
        """Every grid point is held by a trial, and no enqueued trial is still waiting to run."""
        taken, _ = self._taken_grid_ids(study)
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        return len(taken) >= len(self.grid_weights) and not waiting

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if _GRID_ID_ATTR in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return
        taken, assigned = self._taken_grid_ids(study)
        free = [i for i in self._order if i not in taken]
        grid_id = free[0] if free else self._order[assigned % len(self._order)]
        set_trial_system_attr(study, trial, _GRID_KEY_ATTR, self._grid_key)
        set_trial_system_attr(study, trial, _GRID_ID_ATTR, grid_id)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if param_name not in self._param_names:
            raise SearchError(
                f"the grid sampler proposes only {', '.join(self._param_names)}, "
                f"not {param_name!r}",
                hint="suggest mixtures with dmo.search.samplers.suggest_mixture",
            )
        if _GRID_ID_ATTR not in trial.system_attrs:
            raise SearchError(
                "an enqueued trial left some stick-breaking parameters unset",
                hint=f"enqueue all of {', '.join(self._param_names)}",
            )
        grid_id = int(trial.system_attrs[_GRID_ID_ATTR])
        return float(self.grid_u[grid_id, self._param_names.index(param_name)])


# --------------------------------------------------------------------------- registry


def _tpe(seed: int, num_domains: int) -> BaseSampler:
    # multivariate: the u's are coupled (together they are one mixture), which
    # independent TPE would ignore.
    return optuna.samplers.TPESampler(
        seed=seed, multivariate=True, n_startup_trials=TPE_STARTUP_TRIALS
    )


def _gp(seed: int, num_domains: int) -> BaseSampler:
    return optuna.samplers.GPSampler(seed=seed)


def _cmaes(seed: int, num_domains: int) -> BaseSampler:
    return optuna.samplers.CmaEsSampler(seed=seed)


def _qmc(seed: int, num_domains: int) -> BaseSampler:
    # Scrambled with a fixed seed: every worker draws the same sequence.
    with warnings.catch_warnings():
        # Optuna marks QMCSampler experimental; that is no news a user can act on.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(seed=seed, scramble=True)


def _random(seed: int, num_domains: int) -> BaseSampler:
    # Uniform u through stick-breaking is Dirichlet(1) on w: the reference study's draws.
    return optuna.samplers.RandomSampler(seed=seed)


def _grid(seed: int, num_domains: int) -> BaseSampler:
    return SimplexGridSampler(num_domains, seed=seed)


SAMPLERS: dict[str, Callable[[int, int], BaseSampler]] = {
    "tpe": _tpe,
    "gp": _gp,
    "cmaes": _cmaes,
    "qmc": _qmc,
    "random": _random,
    "grid": _grid,
}


def make_sampler(
    name: str, *, seed: int, num_domains: int, multi_objective: bool = False
) -> BaseSampler:
    """Build the sampler ``name`` for a K-domain search (same seed, same proposals)."""
    factory = SAMPLERS.get(name)
    if factory is None:
        raise SearchError(
            f"unknown sampler {name!r}",
            where="search.sampler",
            hint=f"known samplers: {', '.join(SAMPLERS)}",
        )
    if multi_objective and name not in names.MULTI_OBJECTIVE_SAMPLERS:
        raise SearchError(
            f"sampler {name!r} optimises a single objective only",
            where="search.sampler",
            hint=f"with objective kind 'multi' use one of: {', '.join(names.MULTI_OBJECTIVE_SAMPLERS)}",
        )
    _check_num_domains(num_domains)
    return factory(seed, num_domains)


# --------------------------------------------------------------------------- trials


def suggest_mixture(trial: BaseTrial, domain_names: Sequence[str]) -> Mixture:
    """Ask the trial for u0 … u{K−2}, return the mixture w and record it on the trial.

    The true w is stored as the user attribute ``weights`` ({domain: w_i}) so
    that Optuna's own views show mixtures, not stick-breaking coordinates.
    """
    names = list(domain_names)
    _check_num_domains(len(names))
    u = [trial.suggest_float(name, 0.0, 1.0) for name in u_param_names(len(names))]
    mixture = Mixture(tuple(names), tuple(float(x) for x in u_to_weights(u)))
    trial.set_user_attr(WEIGHTS_USER_ATTR, mixture.as_dict())
    return mixture


def _enqueue_points(study: Study, points: np.ndarray, kind: str) -> None:
    names = u_param_names(points.shape[1])
    for w in points:
        u = weights_to_u(w)
        study.enqueue_trial(
            {n: float(x) for n, x in zip(names, u)},
            user_attrs={WARM_START_USER_ATTR: kind},
            skip_if_exists=True,
        )


WARM_STARTS: dict[str, Callable[[int, int], np.ndarray]] = {
    "uniform": lambda num_domains, denominator: np.full((1, num_domains), 1.0 / num_domains),
    # Coarsest points first, so a budget smaller than the grid still spans the simplex.
    "grid": lambda num_domains, denominator: coarse_to_fine_grid(num_domains, denominator),
}


def enqueue_warm_start(
    study: Study,
    domain_names: Sequence[str],
    kinds: Sequence[str] = ("uniform",),
    *,
    denominator: int = DEFAULT_DENOMINATOR,
) -> int:
    """Enqueue known mixtures before the sampler starts; return how many were new.

    Re-running (e.g. when a search resumes) enqueues nothing twice: mixtures
    already waiting or evaluated are skipped.
    """
    num_domains = len(domain_names)
    _check_num_domains(num_domains)
    unknown = [k for k in kinds if k not in WARM_STARTS]
    if unknown:
        raise SearchError(
            f"unknown warm start {', '.join(map(repr, unknown))}",
            where="search.warm_start",
            hint=f"known warm starts: {', '.join(WARM_STARTS)}",
        )
    before = len(study.get_trials(deepcopy=False))
    for kind in kinds:
        _enqueue_points(study, WARM_STARTS[kind](num_domains, denominator), kind)
    return len(study.get_trials(deepcopy=False)) - before
