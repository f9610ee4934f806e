"""Mixture sampling: what a model trained on mixture `w` with budget `N` sees.

Two views of the same mixture. `mixture_counts` gives exact per-domain counts
(largest-remainder rounding, so Σ n_i = N), used by recipes and JSONL export.
`MixtureStream` draws a seeded per-sample stream with domain probabilities w,
which is what LLaMA-Factory's `interleave_under` does and what mixture SFT,
experts (one-hot w) and the base (uniform w) train on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dmo.errors import MergeError
from dmo.mixture import check_weights


def _checked(weights: Sequence[float]) -> np.ndarray:
    values = list(weights)
    if not values:
        raise MergeError("weights must be a non-empty list of numbers")
    return np.asarray(check_weights(values, [f"domain {i}" for i in range(len(values))]), dtype=np.float64)


def mixture_counts(weights: Sequence[float], budget: int) -> list[int]:
    """Exact per-domain sample counts: Hamilton's largest-remainder method.

    Ties in the remainder go to the lower index, so the result is deterministic.
    """
    w = _checked(weights)
    if budget < 0:
        raise MergeError(f"budget must be non-negative, got {budget}")
    quotas = w * budget
    counts = np.floor(quotas).astype(np.int64)
    remainder = budget - int(counts.sum())
    order = sorted(range(len(w)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[:remainder]:
        counts[i] += 1
    return [int(c) for c in counts]


class MixtureStream:
    """A seeded, endless stream of (domain index, sample index) pairs.

    Each sample's domain is drawn with probabilities w; within a domain the
    samples are visited in a fresh seeded permutation per epoch, so a domain
    is never sampled twice before all its samples were seen.
    """

    def __init__(self, weights: Sequence[float], sizes: Sequence[int], *, seed: int):
        self.weights = _checked(weights)
        if len(sizes) != len(self.weights):
            raise MergeError(f"{len(self.weights)} weights for {len(sizes)} domains")
        self.sizes = list(sizes)
        self._rng = np.random.default_rng(seed)
        self._order = [np.empty(0, dtype=np.int64) for _ in sizes]
        self._cursor = [0 for _ in sizes]

    def take(self, n: int) -> list[tuple[int, int]]:
        domains = self._rng.choice(len(self.weights), size=n, p=self.weights)
        return [(int(d), self._next_index(int(d))) for d in domains]

    def _next_index(self, domain: int) -> int:
        if self._cursor[domain] >= len(self._order[domain]):
            self._order[domain] = self._rng.permutation(self.sizes[domain])
            self._cursor[domain] = 0
        index = int(self._order[domain][self._cursor[domain]])
        self._cursor[domain] += 1
        return index

    def state(self) -> dict:
        """Everything needed to continue the stream exactly (for resumable training)."""
        return {
            "rng": self._rng.bit_generator.state,
            "order": [o.tolist() for o in self._order],
            "cursor": list(self._cursor),
        }

    def restore(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]
        self._order = [np.asarray(o, dtype=np.int64) for o in state["order"]]
        self._cursor = list(state["cursor"])
