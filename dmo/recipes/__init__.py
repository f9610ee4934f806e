"""Recipes: a searched mixture in the formats full SFT runs read."""

from __future__ import annotations

from dmo.recipes.export import FORMATS, export_recipe
from dmo.recipes.formats import interleave_probs, llamafactory_yaml

__all__ = ["FORMATS", "export_recipe", "interleave_probs", "llamafactory_yaml"]
