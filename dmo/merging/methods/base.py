"""The small base class every merge method implements.

A method sees the base tensor ``θ0`` and the task vectors ``Δ_i = θ_i − θ0`` of
the K experts (never the experts themselves), because that is what the
:class:`~dmo.merging.bank.TaskVectorBank` keeps in memory. Two kinds exist:

* *fused* methods are affine in the experts: ``θ = β·θ0 + Δᵀc`` for a scalar
  ``β`` and coefficients ``c`` that depend only on the weights. They return a
  :class:`GemvPlan` and the bank runs them as one memory-bound GEMV over all
  parameters at once (linear, task_arithmetic).
* the others need per-tensor work (sparsification, sign consensus) and
  implement :meth:`MergeMethod.merge_tensor`; the bank calls it once per
  parameter tensor, which is several times slower (ties, dare_*).

Methods are frozen dataclasses; variants are instances with other arguments,
and :meth:`MergeMethod.with_params` returns a copy with user parameters
applied, using mergekit's parameter names so one ``params`` dict means the same
thing to both tools.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from dmo.errors import MergeError


@dataclass(frozen=True)
class GemvPlan:
    """A fused merge: ``θ = beta·θ0 + Δᵀ·coefficients`` (Δ is K×P)."""

    beta: float
    coefficients: tuple[float, ...]


@dataclass(frozen=True)
class ParamSpec:
    """One user-settable parameter: its mergekit name, the dataclass field, and a validator."""

    field: str
    convert: Callable[[Any], Any]
    allowed: str


def as_bool(value: Any) -> bool:
    # Config params are floats (MergeSettings.params: dict[str, float]), so 1.0/0.0 mean true/false.
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise ValueError


def as_finite_float(value: Any) -> float:
    result = float(value)
    if isinstance(value, bool) or not math.isfinite(result):
        raise ValueError
    return result


def as_density(value: Any) -> float:
    result = as_finite_float(value)
    if not 0.0 <= result <= 1.0:
        raise ValueError
    return result


def as_seed(value: Any) -> int:
    if isinstance(value, bool) or float(value) != int(float(value)) or int(float(value)) < 0:
        raise ValueError
    return int(float(value))


class MergeMethod(ABC):
    """Base class of merge methods (implementations are frozen dataclasses)."""

    name: str
    #: True when the method is a single GEMV over the bank (see :class:`GemvPlan`).
    fused: ClassVar[bool] = False
    #: mergekit parameter name -> how to set it on this method.
    PARAMS: ClassVar[Mapping[str, ParamSpec]] = {}

    def with_params(
        self, params: Mapping[str, Any] | None, *, where: str = "merge.params"
    ) -> MergeMethod:
        """Return a copy with ``params`` (mergekit names, e.g. ``lambda``, ``density``) applied."""
        if not params:
            return self
        changes = {}
        for key, value in params.items():
            spec = self.PARAMS.get(key)
            if spec is None:
                known = ", ".join(sorted(self.PARAMS)) or "none"
                raise MergeError(
                    f"method {self.name!r} has no parameter {key!r}",
                    where=f"{where}.{key}",
                    hint=f"its parameters are: {known}",
                )
            try:
                changes[spec.field] = spec.convert(value)
            except (TypeError, ValueError):
                raise MergeError(
                    f"invalid value {value!r} for {self.name} parameter {key!r}",
                    where=f"{where}.{key}",
                    hint=f"allowed: {spec.allowed}",
                ) from None
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def gemv_plan(self, weights: Sequence[float]) -> GemvPlan:
        """The fused form of this merge for ``weights``; only fused methods have one."""
        raise NotImplementedError(f"{self.name} is not a fused (GEMV) method")

    def merge_tensor(
        self,
        base: torch.Tensor,
        deltas: torch.Tensor,
        weights: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Merge one parameter tensor.

        base: (*shape) float32; deltas: (K, *shape) float32; weights: (K,) float32.
        Fused methods get this for free from their plan; others override it.
        """
        plan = self.gemv_plan(weights.tolist())
        coefficients = torch.tensor(plan.coefficients, dtype=deltas.dtype)
        mixed = torch.tensordot(coefficients, deltas, dims=1)  # (*shape)
        return base * plan.beta + mixed

    @property
    def seed(self) -> int | None:
        """Seed of the method's randomness; None for deterministic methods."""
        return None

    @abstractmethod
    def mergekit_parameters(self) -> dict[str, Any]:
        """Global mergekit parameters that reproduce this instance (``lambda``, ...)."""

    def mergekit_model_parameters(self) -> dict[str, Any]:
        """Per-expert mergekit parameters besides ``weight`` (e.g. ``density``)."""
        return {}

    @property
    def uses_base_model(self) -> bool:
        """Whether mergekit needs ``base_model:`` for this method (task-vector methods do)."""
        return True


def rescaled_masked_tensor(
    tensor: torch.Tensor, mask: torch.Tensor, rescale_l1: bool, eps: float = 1e-7
) -> torch.Tensor:
    """``tensor·mask``, rescaled to the tensor's L1 norm if ``rescale_l1`` (mergekit sparsify.py).

    Shared by the magnitude (TIES) and random (DARE) sparsifiers. Norms below
    ``eps`` are left unscaled, as in mergekit.
    """
    masked = tensor * mask
    if not rescale_l1:
        return masked
    before = tensor.abs().sum()
    after = masked.abs().sum()
    if before < eps or after < eps:
        return masked
    return masked * (before / after)
