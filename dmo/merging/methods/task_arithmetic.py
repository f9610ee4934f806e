"""``task_arithmetic``: ``θ0 + λ Σ_i w_i (θ_i − θ0)`` (mergekit's ``task_arithmetic``).

The proxy of the reference study. mergekit's defaults: ``lambda=1`` and
``normalize=false``; with ``normalize=true`` the sum of task vectors is divided
by ``Σw`` (left alone when ``|Σw| < 1e-8``, as mergekit does). One GEMV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from dmo.merging.methods.base import GemvPlan, MergeMethod, ParamSpec, as_bool, as_finite_float

# mergekit's threshold below which a weight sum is treated as zero (generalized_task_arithmetic.py).
ZERO_SUM = 1e-8


@dataclass(frozen=True)
class TaskArithmeticMerge(MergeMethod):
    name: str = "task_arithmetic"
    lambda_: float = 1.0
    normalize: bool = False

    fused: ClassVar[bool] = True
    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "lambda": ParamSpec("lambda_", as_finite_float, "a finite number"),
        "normalize": ParamSpec("normalize", as_bool, "true or false (1 or 0)"),
    }

    def gemv_plan(self, weights: Sequence[float]) -> GemvPlan:
        total = math.fsum(weights)
        divisor = total if self.normalize and abs(total) >= ZERO_SUM else 1.0
        scale = self.lambda_ / divisor
        return GemvPlan(beta=1.0, coefficients=tuple(scale * float(w) for w in weights))

    def mergekit_parameters(self) -> dict[str, Any]:
        return {"lambda": self.lambda_, "normalize": self.normalize}
