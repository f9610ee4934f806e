"""The merging stage: proxies for a mixture ``w`` built in memory from expert task vectors.

Public API: :class:`TaskVectorBank` (θ0 + Δᵀw into a preallocated model), the
merge-method registry (:data:`METHODS`, :func:`get_method`), weight validation,
the compatibility guard, and mergekit interop (YAML export, ``run_merge``).
"""

from __future__ import annotations

from dmo.merging.bank import DEFAULT_EXCLUDE, ParamSlot, TaskVectorBank
from dmo.merging.compat import check_checkpoints, check_configs, check_state_dict
from dmo.merging.mergekit_interop import (
    materialize_proxy,
    mergekit_config,
    mergekit_yaml,
    run_mergekit,
)
from dmo.merging.methods import METHODS, MergeMethod, get_method
from dmo.merging.weights import parse_weights, validate_weights

__all__ = [
    "DEFAULT_EXCLUDE",
    "METHODS",
    "MergeMethod",
    "ParamSlot",
    "TaskVectorBank",
    "check_checkpoints",
    "check_configs",
    "check_state_dict",
    "get_method",
    "materialize_proxy",
    "mergekit_config",
    "mergekit_yaml",
    "parse_weights",
    "run_mergekit",
    "validate_weights",
]
