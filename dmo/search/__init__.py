"""Searching data mixtures: the simplex parameterisation, grids, samplers, objectives."""

from __future__ import annotations

from dmo.search.grid import (
    coarse_to_fine_grid,
    grid_size,
    reference_study_grid,
    simplex_grid,
    simplex_grid_fractions,
)
from dmo.search.objectives import (
    compute_objective,
    objective_directions,
    objective_names,
    objective_values,
)
from dmo.search.samplers import (
    SAMPLERS,
    SimplexGridSampler,
    enqueue_warm_start,
    make_sampler,
    suggest_weights,
    u_param_names,
)
from dmo.search.simplex import u_to_weights, validate_weights, weights_to_u

__all__ = [
    "SAMPLERS",
    "SimplexGridSampler",
    "coarse_to_fine_grid",
    "compute_objective",
    "enqueue_warm_start",
    "grid_size",
    "make_sampler",
    "objective_directions",
    "objective_names",
    "objective_values",
    "reference_study_grid",
    "simplex_grid",
    "simplex_grid_fractions",
    "suggest_weights",
    "u_param_names",
    "u_to_weights",
    "validate_weights",
    "weights_to_u",
]
