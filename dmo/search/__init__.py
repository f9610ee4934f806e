"""Searching data mixtures: the simplex parameterisation, grids, samplers, objectives, the driver.

Import from the submodules (``dmo.search.simplex``, ``dmo.search.samplers``,
...): this package imports nothing itself, so the light ones (simplex, grid,
objectives) never pull in Optuna.
"""
