"""Which samples a recipe of budget N holds: exact counts, distinct where possible, in bounded memory.

Pure functions of (weights, budget, domain sizes, seed). Each domain gets its
largest-remainder share of N (:func:`dmo.data.mixture.mixture_counts`, summing
to exactly N). A domain with at least that many samples contributes distinct
ones (a seeded permutation's head); a smaller one contributes every sample
``⌊count / size⌋`` times plus a seeded subset for the rest, and is reported as
repeated. Orders are generated lazily, so a budget of a billion samples costs
no more memory than one of a thousand.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from dmo.data.mixture import mixture_counts


@dataclass(frozen=True)
class DomainShare:
    domain: str
    weight: float
    count: int  # samples in the recipe
    available: int  # distinct samples the domain has

    @property
    def distinct(self) -> int:
        return min(self.count, self.available)

    @property
    def repeated(self) -> bool:
        return self.count > self.available

    def describe(self) -> str:
        text = f"{self.domain} {self.count:,}"
        if self.repeated:
            text += f" (all {self.available:,} distinct samples, each ~{self.count / self.available:.1f}×)"
        return text


def shares(domains: Sequence[str], weights: Sequence[float], budget: int, sizes: Sequence[int]) -> list[DomainShare]:
    """Each domain's exact count of a budget-N recipe and whether it must repeat samples."""
    counts = mixture_counts(weights, budget)
    return [DomainShare(d, float(w), c, n) for d, w, c, n in zip(domains, weights, counts, sizes, strict=True)]


def domain_order(size: int, count: int, seed: int) -> Iterator[int]:
    """``count`` indices into a domain of ``size`` samples: whole seeded permutations, then the
    head of one more; every sample appears ⌊count/size⌋ or ⌈count/size⌉ times."""
    if count and size < 1:
        raise ValueError("a domain with no samples cannot contribute any")
    rng = np.random.default_rng(seed)
    left = count
    while left > 0:
        take = min(left, size)
        yield from (int(i) for i in rng.permutation(size)[:take])
        left -= take


def interleaved_domains(counts: Sequence[int], seed: int) -> Iterator[int]:
    """Domain indices in a uniformly random order with exactly ``counts[d]`` of domain d.

    Sequential sampling without replacement from the multiset of counts, drawn in
    blocks: O(K) memory whatever the total.
    """
    rng = np.random.default_rng(seed)
    remaining = np.asarray(counts, dtype=np.int64).copy()
    total = int(remaining.sum())
    block = 1 << 14
    while total > 0:
        n = min(block, total)
        # A block is a sample without replacement of n items from the remaining multiset.
        drawn = (rng.multivariate_hypergeometric(remaining, n) if total < NUMPY_HYPERGEOMETRIC_LIMIT
                 else _large_multivariate_hypergeometric(rng, remaining, n))
        order = np.repeat(np.arange(len(remaining)), drawn)
        rng.shuffle(order)
        yield from (int(d) for d in order)
        remaining -= drawn
        total -= n


# numpy's hypergeometric samplers refuse populations of 1e9 or more (a budget that large is a valid request).
NUMPY_HYPERGEOMETRIC_LIMIT = 10**9


def _large_multivariate_hypergeometric(rng: np.random.Generator, remaining: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws without replacement from ``remaining`` when it holds 1e9 items or more.

    Domain by domain from the conditionals (x_d given the earlier draws is hypergeometric with
    ``remaining[d]`` good and the later domains' items bad). A pile numpy refuses is drawn as a
    binomial, which differs from the hypergeometric by a finite-population factor of at least
    1 − n/N > 1 − 2e-5; each draw is clipped to what the piles allow, so the counts stay exact.
    """
    drawn = np.zeros_like(remaining)
    later = int(remaining.sum())
    left = n
    for d, good in enumerate(int(r) for r in remaining):
        later -= good
        if left == 0:
            break
        if good < NUMPY_HYPERGEOMETRIC_LIMIT and later < NUMPY_HYPERGEOMETRIC_LIMIT:
            x = int(rng.hypergeometric(good, later, left)) if good and later else (left if good else 0)
        else:
            x = int(rng.binomial(left, good / (good + later)))
        x = min(max(x, left - later), good, left)
        drawn[d], left = x, left - x
    return drawn


__all__ = ["DomainShare", "domain_order", "interleaved_domains", "shares"]
