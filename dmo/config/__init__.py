"""Typed configuration: schema and YAML loading."""

from __future__ import annotations

from dmo._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DmoConfig": "dmo.config.schema",
        "DomainSettings": "dmo.config.schema",
        "EvaluationSettings": "dmo.config.schema",
        "JsonlSource": "dmo.config.schema",
        "load_config": "dmo.config.loader",
        "LoraSettings": "dmo.config.schema",
        "MergeSettings": "dmo.config.schema",
        "HfModelSettings": "dmo.config.schema",
        "ModelSettings": "dmo.config.schema",
        "ModMllmSettings": "dmo.config.schema",
        "ModSettings": "dmo.config.schema",
        "ObjectiveSettings": "dmo.config.schema",
        "parse_config": "dmo.config.loader",
        "ProjectSettings": "dmo.config.schema",
        "PruningSettings": "dmo.config.schema",
        "RaySettings": "dmo.config.schema",
        "SearchSettings": "dmo.config.schema",
        "SyntheticSource": "dmo.config.schema",
        "TokenizerSettings": "dmo.config.schema",
        "TrainingSettings": "dmo.config.schema",
        "TrainingStages": "dmo.config.schema",
        "with_overrides": "dmo.config.loader",
    },
)

__all__ = [
    "DmoConfig",
    "DomainSettings",
    "EvaluationSettings",
    "JsonlSource",
    "load_config",
    "LoraSettings",
    "MergeSettings",
    "HfModelSettings",
    "ModelSettings",
    "ModMllmSettings",
    "ModSettings",
    "ObjectiveSettings",
    "parse_config",
    "ProjectSettings",
    "PruningSettings",
    "RaySettings",
    "SearchSettings",
    "SyntheticSource",
    "TokenizerSettings",
    "TrainingSettings",
    "TrainingStages",
    "with_overrides",
]
