"""The merging stage: proxies for a mixture ``w`` built in memory from expert task vectors.

Public API: :class:`TaskVectorBank` (θ0 + Δᵀw into a preallocated model), the
merge-method registry (:data:`METHODS`, :func:`get_method`), weight validation,
the compatibility guard, and mergekit interop (YAML export, ``run_merge``).
"""

from __future__ import annotations

from dmo._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "check_checkpoints": "dmo.merging.compat",
        "check_configs": "dmo.merging.compat",
        "check_state_dict": "dmo.merging.compat",
        "DEFAULT_EXCLUDE": "dmo.merging.bank",
        "get_method": "dmo.merging.methods",
        "materialize_proxy": "dmo.merging.mergekit_interop",
        "mergekit_config": "dmo.merging.mergekit_interop",
        "mergekit_yaml": "dmo.merging.mergekit_interop",
        "MergeMethod": "dmo.merging.methods",
        "METHODS": "dmo.merging.methods",
        "ParamSlot": "dmo.merging.bank",
        "run_mergekit": "dmo.merging.mergekit_interop",
        "TaskVectorBank": "dmo.merging.bank",
    },
)

__all__ = [
    "check_checkpoints",
    "check_configs",
    "check_state_dict",
    "DEFAULT_EXCLUDE",
    "get_method",
    "materialize_proxy",
    "mergekit_config",
    "mergekit_yaml",
    "MergeMethod",
    "METHODS",
    "ParamSlot",
    "run_mergekit",
    "TaskVectorBank",
]
