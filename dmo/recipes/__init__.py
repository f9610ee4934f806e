"""Recipes: a searched mixture in the formats full SFT runs read."""

from __future__ import annotations

from dmo._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "export_recipe": "dmo.recipes.export",
        "FORMATS": "dmo.recipes.export",
        "interleave_probs": "dmo.recipes.formats",
        "llamafactory_yaml": "dmo.recipes.formats",
    },
)

__all__ = ["export_recipe", "FORMATS", "interleave_probs", "llamafactory_yaml"]
