"""``linear``: the weighted average of the experts (mergekit's ``linear``).

mergekit computes ``Σ w_i θ_i / Σ w_i`` (``normalize=True`` by default) or
``Σ w_i θ_i`` without normalisation, and ignores any base model. With
``θ_i = θ0 + Δ_i`` that is ``θ0 + Δᵀ(w / Σw)`` or ``(Σw)·θ0 + Δᵀw``: one GEMV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from dmo.errors import MergeError
from dmo.merging.methods.base import GemvPlan, MergeMethod, ParamSpec, as_bool


@dataclass(frozen=True)
class LinearMerge(MergeMethod):
    name: str = "linear"
    normalize: bool = True

    fused: ClassVar[bool] = True
    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "normalize": ParamSpec("normalize", as_bool, "true or false (1 or 0)"),
    }

    def gemv_plan(self, weights: Sequence[float]) -> GemvPlan:
        total = math.fsum(weights)
        if not self.normalize:
            return GemvPlan(beta=total, coefficients=tuple(float(w) for w in weights))
        if total == 0:
            raise MergeError(
                "linear merge with normalize=true needs weights with a non-zero sum",
                where="weights",
                hint="give at least one positive weight",
            )
        return GemvPlan(beta=1.0, coefficients=tuple(float(w) / total for w in weights))

    def mergekit_parameters(self) -> dict[str, Any]:
        return {"normalize": self.normalize}

    @property
    def uses_base_model(self) -> bool:
        return False
