"""A data mixture: one weight per domain. The one value type, validator and parser of weights.

Every mixture dmo handles — a ``--weights`` flag, a sampled trial, a
training stream, a stored trial row, a recipe — is a :class:`Mixture` or was
checked by :func:`check_weights`, so a bad vector fails with the same message
everywhere instead of producing a NaN model. Merge weights (one per expert)
go through the same validator with ``simplex=False``: task arithmetic may
scale them, a data mixture may not.

Pure Python: no torch, no numpy, so the CLI can parse weights without them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from dmo.errors import MergeError

SUM_TOLERANCE = 1e-6
# Rounding in upstream arithmetic can leave -1e-17 where a zero was meant; such
# values are zeros, anything more negative is a real mistake.
NEGATIVE_TOLERANCE = 1e-12
NUMBERS_HINT = "give comma-separated numbers, e.g. 0.5,0.5"


def parse_floats(text: str, *, where: str = "--weights") -> tuple[float, ...]:
    """``"0.5, 0.25,0.25"`` → floats: the command line's spelling of a weight vector."""
    parts = [part.strip() for part in str(text).split(",")]
    if not str(text).strip() or any(not part for part in parts):
        raise MergeError(f"cannot read weights {text!r}", where=where, hint=NUMBERS_HINT)
    values = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise MergeError(f"weight {part!r} is not a number", where=where, hint=NUMBERS_HINT) from None
    return tuple(values)


def check_weights(
    values: Sequence[float] | Mapping[str, float],
    names: Sequence[str],
    *,
    simplex: bool = True,
    normalize: bool = False,
    where: str = "weights",
    normalize_flag: str | None = None,
) -> tuple[float, ...]:
    """Return one finite, non-negative float per name, or raise MergeError naming the problem.

    A mapping is matched to ``names`` by key, a sequence by position. With
    ``normalize`` a vector with a positive sum is rescaled onto the simplex;
    otherwise ``simplex`` demands a sum of 1 (within 1e-6, then rescaled
    exactly). ``normalize_flag`` names the caller's switch for rescaling
    (e.g. ``--normalize``) so the error says what to pass.
    """
    names = list(names)
    if isinstance(values, Mapping):
        missing = [n for n in names if n not in values]
        extra = sorted(set(values) - set(names))
        if missing or extra:
            problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unknown {', '.join(extra)}"] if extra else []
            )
            raise MergeError(f"weights do not match the domains: {'; '.join(problems)}", where=where,
                             hint=f"one weight per domain: {', '.join(names)}")
        values = [values[n] for n in names]
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        raise MergeError(f"weights are not numbers: {list(values)!r}", where=where) from None
    if len(floats) != len(names):
        raise MergeError(f"expected {len(names)} weights, got {len(floats)}", where=where,
                         hint=f"one weight per entry, in order: {', '.join(names)}")
    bad = [n for n, x in zip(names, floats) if not math.isfinite(x)]
    if bad:
        raise MergeError(f"weights are NaN or infinite for {', '.join(bad)}", where=where)
    negative = [f"{n}={x:g}" for n, x in zip(names, floats) if x < -NEGATIVE_TOLERANCE]
    if negative:
        raise MergeError(f"weights must be non-negative, got {', '.join(negative)}", where=where,
                         hint="a mixture gives each domain a share in [0, 1]")
    floats = [max(0.0, x) for x in floats]
    total = math.fsum(floats)
    if normalize:
        if total <= 0.0:
            raise MergeError("weights are all zero and cannot be normalised", where=where,
                             hint="give at least one weight > 0")
        return tuple(x / total for x in floats)
    if not simplex:
        return tuple(floats)
    if abs(total - 1.0) > SUM_TOLERANCE:
        rescale = f"pass {normalize_flag} to have them rescaled" if normalize_flag else "rescale them"
        raise MergeError(f"weights sum to {total:.9g}, not 1 (tolerance {SUM_TOLERANCE:g})", where=where,
                         hint=f"make them sum to 1, or {rescale}" if normalize_flag else "make them sum to 1")
    return tuple(x / total for x in floats)


def merge_coefficients(weights: Sequence[float], power: float = 1.0) -> tuple[float, ...]:
    """The merge coefficient of each expert for data mixture ``weights``: ``w_i^power / Σ_j w_j^power``.

    ``power`` 1 is plain task arithmetic (``weights`` returned as they are). Below 1 a small share
    gets more of its task vector and a large one less, the way a model trained on the mixture
    saturates an easy domain from a small share of its data on (docs/fidelity.md, mechanism 1);
    a zero weight stays zero and the order of the shares is kept.
    """
    if power == 1.0:
        return tuple(float(w) for w in weights)
    if not (power > 0.0 and math.isfinite(power)):
        raise MergeError(f"weight power must be a positive number, got {power!r}", where="search.merge.weight_power")
    powered = [float(w) ** power if w > 0 else 0.0 for w in weights]
    total = math.fsum(powered)
    if total <= 0.0:
        raise MergeError("weights are all zero: no mixture to merge", where="weights")
    return tuple(p / total for p in powered)


@dataclass(frozen=True)
class Mixture:
    """Domain names and their weights, on the simplex (validated on construction)."""

    domains: tuple[str, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(set(self.domains)) != len(self.domains):
            raise MergeError(f"a mixture names each domain once, got {list(self.domains)}")
        checked = check_weights(self.weights, self.domains)
        object.__setattr__(self, "domains", tuple(str(d) for d in self.domains))
        object.__setattr__(self, "weights", checked)

    @classmethod
    def of(
        cls,
        domains: Sequence[str],
        weights: Sequence[float] | Mapping[str, float],
        *,
        normalize: bool = False,
        where: str = "weights",
        normalize_flag: str | None = None,
    ) -> Mixture:
        """A mixture from weights by position or by domain, with the error naming ``where``."""
        checked = check_weights(weights, domains, normalize=normalize, where=where, normalize_flag=normalize_flag)
        return cls(tuple(domains), checked)

    @classmethod
    def parse(
        cls, text: str, domains: Sequence[str], *, normalize: bool = False, where: str = "--weights",
        normalize_flag: str | None = "--normalize",
    ) -> Mixture:
        """``"0.5,0.3,0.2"``, one number per domain in order."""
        return cls.of(domains, parse_floats(text, where=where), normalize=normalize, where=where,
                      normalize_flag=normalize_flag)

    @classmethod
    def uniform(cls, domains: Sequence[str]) -> Mixture:
        return cls(tuple(domains), tuple(1.0 / len(domains) for _ in domains))

    @classmethod
    def one_hot(cls, domains: Sequence[str], domain: str) -> Mixture:
        return cls(tuple(domains), tuple(float(d == domain) for d in domains))

    def __getitem__(self, domain: str) -> float:
        return self.weights[self.domains.index(domain)]

    def __iter__(self) -> Iterator[float]:
        return iter(self.weights)

    def __len__(self) -> int:
        return len(self.weights)

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.domains, self.weights))

    def key(self) -> str:
        """Canonical text (sorted domains, 9 decimals): equal mixtures, equal keys."""
        rounded = {d: round(w, 9) for d, w in sorted(self.as_dict().items())}
        return json.dumps(rounded, separators=(",", ":"))

    def __str__(self) -> str:
        return ", ".join(f"{d}={w:.3f}" for d, w in zip(self.domains, self.weights))


__all__ = ["Mixture", "check_weights", "parse_floats"]
