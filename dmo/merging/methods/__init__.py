"""The merge-method registry: an explicit list of instances, looked up by name.

Names, formulas and defaults are mergekit 0.1.5's, so a method name in a dmo
config means the same merge as in a mergekit YAML. Variants are instances with
other arguments (see ``ties``/``dare_ties``/``dare_linear``), not subclasses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dmo.errors import MergeError
from dmo.merging.methods.base import GemvPlan, MergeMethod
from dmo.merging.methods.linear import LinearMerge
from dmo.merging.methods.task_arithmetic import TaskArithmeticMerge
from dmo.merging.methods.ties import SparseTaskArithmetic

METHODS: dict[str, MergeMethod] = {
    method.name: method
    for method in (
        LinearMerge(),
        TaskArithmeticMerge(),
        SparseTaskArithmetic(
            "ties", sparsification="magnitude", consensus=True, normalize=True, rescale=False
        ),
        SparseTaskArithmetic(
            "dare_ties", sparsification="random", consensus=True, normalize=False, rescale=True
        ),
        SparseTaskArithmetic(
            "dare_linear", sparsification="random", consensus=False, normalize=False, rescale=True
        ),
    )
}


def get_method(
    name: str | MergeMethod, params: Mapping[str, Any] | None = None, *, where: str = "search.merge"
) -> MergeMethod:
    """The registered method ``name`` with ``params`` applied; unknown names list the known ones.

    ``where`` prefixes error locations (``<where>.method``, ``<where>.params.<key>``).
    """
    if isinstance(name, MergeMethod):
        return name.with_params(params, where=f"{where}.params")
    method = METHODS.get(name)
    if method is None:
        raise MergeError(
            f"unknown merge method {name!r}",
            where=f"{where}.method",
            hint=f"known methods: {', '.join(METHODS)}",
        )
    return method.with_params(params, where=f"{where}.params")


__all__ = [
    "METHODS",
    "GemvPlan",
    "LinearMerge",
    "MergeMethod",
    "SparseTaskArithmetic",
    "TaskArithmeticMerge",
    "get_method",
]
