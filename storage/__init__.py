"""The SQL store of dmo: experts, searches, trials, validations and recipes.

The only package that knows SQL. Open it with :meth:`Store.open` and use the
records it returns; Optuna's study lives in the same database (``store.url``).
"""

from __future__ import annotations

from storage.db import MISSING_STORE_HINT, VERSION_TABLE, head_revision, mask_url
from storage.records import (
    MODEL_KINDS,
    MODEL_STATUSES,
    SEARCH_STATUSES,
    TRIAL_STATES,
    VALIDATION_STATUSES,
    MixtureResultRecord,
    ModelRecord,
    RecipeRecord,
    SearchRecord,
    TrialRecord,
    ValidationRecord,
    to_json,
)
from storage.store import Store

__all__ = [
    "MISSING_STORE_HINT",
    "MODEL_KINDS",
    "MODEL_STATUSES",
    "SEARCH_STATUSES",
    "TRIAL_STATES",
    "VALIDATION_STATUSES",
    "VERSION_TABLE",
    "MixtureResultRecord",
    "ModelRecord",
    "RecipeRecord",
    "SearchRecord",
    "Store",
    "TrialRecord",
    "ValidationRecord",
    "head_revision",
    "mask_url",
    "to_json",
]
