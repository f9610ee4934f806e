"""Typed configuration: schema and YAML loading."""

from __future__ import annotations

from dmo.config.loader import load_config, parse_config
from dmo.config.schema import (
    DmoConfig,
    DomainSettings,
    EvaluationSettings,
    JsonlSource,
    LoraSettings,
    MergeSettings,
    ModelSettings,
    ModSettings,
    ObjectiveSettings,
    ProjectSettings,
    PruningSettings,
    RaySettings,
    SearchSettings,
    SyntheticSource,
    TokenizerSettings,
    TrainingSettings,
    TrainingStages,
)

__all__ = [
    "DmoConfig",
    "DomainSettings",
    "EvaluationSettings",
    "JsonlSource",
    "LoraSettings",
    "MergeSettings",
    "ModSettings",
    "ModelSettings",
    "ObjectiveSettings",
    "ProjectSettings",
    "PruningSettings",
    "RaySettings",
    "SearchSettings",
    "SyntheticSource",
    "TokenizerSettings",
    "TrainingSettings",
    "TrainingStages",
    "load_config",
    "parse_config",
]
