"""The SQL store of dmo: experts, searches, trials, validations and recipes.

The only package that knows SQL. Open it with :meth:`Store.open` and use the
records it returns; Optuna's study lives in the same database (``store.url``).
"""

from __future__ import annotations

from storage.db import DEFAULT_URL, VERSION_TABLE, head_revision, mask_url
from storage.records import (
    MODEL_KINDS,
    MODEL_STATUSES,
    SEARCH_STATUSES,
    TRIAL_STATES,
    VALIDATION_STATUSES,
    DatasetRecord,
    MixtureResultRecord,
    ModelRecord,
    RecipeRecord,
    SearchRecord,
    TrialRecord,
    ValidationRecord,
    mixture_key,
    to_json,
)
from storage.repository import Store

__all__ = [
    "DEFAULT_URL",
    "MODEL_KINDS",
    "MODEL_STATUSES",
    "SEARCH_STATUSES",
    "TRIAL_STATES",
    "VALIDATION_STATUSES",
    "VERSION_TABLE",
    "DatasetRecord",
    "MixtureResultRecord",
    "ModelRecord",
    "RecipeRecord",
    "SearchRecord",
    "Store",
    "TrialRecord",
    "ValidationRecord",
    "head_revision",
    "mask_url",
    "mixture_key",
    "to_json",
]
