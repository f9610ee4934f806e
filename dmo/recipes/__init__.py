"""Recipes: a searched mixture in the formats full SFT runs read."""

from __future__ import annotations

from dmo._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "export_recipe": "dmo.recipes.export",
        "ExportOptions": "dmo.recipes.export",
        "FORMATS": "dmo.recipes.export",
        "interleave_probs": "dmo.recipes.formats",
        "llamafactory_recipe": "dmo.recipes.formats",
        "RunLength": "dmo.recipes.formats",
    },
)

__all__ = ["export_recipe", "ExportOptions", "FORMATS", "interleave_probs", "llamafactory_recipe", "RunLength"]
