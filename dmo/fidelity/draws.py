"""Which mixtures a validation trains: held-out draws, or the reference study's sets.

Held-out draws are Dirichlet(1) over the simplex from a seed of their own, so
they share nothing with the search that chose its trials by the proxies being
validated (a validation judged on the search's own picks flatters the proxy:
they were selected for high proxy scores). A draw equal to one of the search's
trials is drawn again.

The reference protocol reproduces the sets of the study dmo follows:

- two domains on the 1/8 grid: (k/8, 1 − k/8) for k = 1 … 7, the rest 0 (7 mixtures);
- three domains on the interior of the 1/8 grid: (i, j, k)/8 with i, j, k ≥ 1 (21 mixtures);
- 20 Dirichlet(1) draws over all domains plus the uniform mixture (21 mixtures).

Pure: no store, no model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from dmo.mixture import Mixture

GRID = 8  # the reference study's 1/8 grid
REFERENCE_DRAWS = 20
SAME_MIXTURE_ATOL = 1e-9


@dataclass(frozen=True)
class ValidationMixture:
    """A mixture to validate and the set it belongs to (``draw``, ``pairs``, ``triples``, ``simplex``)."""

    mixture: Mixture
    group: str


def held_out_draws(names: Sequence[str], count: int, *, seed: int,
                   avoid: Iterable[Sequence[float]] = ()) -> list[ValidationMixture]:
    """``count`` Dirichlet(1) mixtures over ``names`` from ``seed``, none equal to a mixture in ``avoid``."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    avoided = [np.asarray(w, dtype=np.float64) for w in avoid]
    rng = np.random.default_rng([seed, 0x5EED])  # a stream no search sampler uses
    chosen: list[ValidationMixture] = []
    while len(chosen) < count:
        weights = rng.dirichlet(np.ones(len(names)))
        if any(np.allclose(weights, w, atol=SAME_MIXTURE_ATOL, rtol=0) for w in avoided):
            continue
        chosen.append(ValidationMixture(Mixture.of(names, [float(x) for x in weights]), "draw"))
    return chosen


def reference_protocol(names: Sequence[str], *, seed: int) -> list[ValidationMixture]:
    """The reference study's 7 + 21 + 21 mixtures: pairs and triples over the first two and three
    domains in ``names`` (the order of the config), then 20 draws and the uniform mixture."""
    if len(names) < 3:
        raise ValueError(f"the reference protocol needs at least three domains, got {len(names)}")
    n = len(names)
    chosen = [ValidationMixture(_padded(names, [k / GRID, 1 - k / GRID]), "pairs") for k in range(1, GRID)]
    chosen += [
        ValidationMixture(_padded(names, [i / GRID, j / GRID, (GRID - i - j) / GRID]), "triples")
        for i in range(1, GRID - 1) for j in range(1, GRID - i)
    ]
    rng = np.random.default_rng([seed, 0x5EED])
    chosen += [ValidationMixture(Mixture.of(names, [float(x) for x in rng.dirichlet(np.ones(n))]), "simplex")
               for _ in range(REFERENCE_DRAWS)]
    chosen.append(ValidationMixture(Mixture.of(names, [1 / n] * n), "simplex"))
    return chosen


def _padded(names: Sequence[str], head: Sequence[float]) -> Mixture:
    return Mixture.of(names, [*head, *([0.0] * (len(names) - len(head)))])
