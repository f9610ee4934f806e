"""The names a config may use for what dmo's registries provide, kept light.

The registries themselves (samplers in :mod:`dmo.search.samplers`, merge
methods in :mod:`dmo.merging.methods`) import Optuna and torch; the config is
checked against these names at parse time, so ``dmo config validate`` refuses
``method: tiess`` in a fraction of a second, with file, line and field. A test
keeps every tuple here equal to its registry.
"""

from __future__ import annotations

SAMPLERS: tuple[str, ...] = ("tpe", "gp", "cmaes", "qmc", "random", "grid")
# Samplers that can optimise (mean, worst) together for objective kind "multi".
MULTI_OBJECTIVE_SAMPLERS: tuple[str, ...] = ("tpe", "gp", "qmc", "random", "grid")

# Merge method -> the mergekit parameter names it accepts.
MERGE_METHODS: dict[str, tuple[str, ...]] = {
    "linear": ("normalize",),
    "task_arithmetic": ("lambda", "normalize"),
    "ties": ("density", "lambda", "normalize", "rescale", "int8_mask", "seed"),
    "dare_ties": ("density", "lambda", "normalize", "rescale", "int8_mask", "seed"),
    "dare_linear": ("density", "lambda", "normalize", "rescale", "int8_mask", "seed"),
}
# Those affine in the experts' deltas (MergeMethod.fused): the only ones LoRA factors can be merged by.
FUSED_MERGE_METHODS: tuple[str, ...] = ("linear", "task_arithmetic")
# How a search holds LoRA experts (search.merge.bank; dmo.merging.banks.open_bank).
BANK_LAYOUTS: tuple[str, ...] = ("auto", "factored", "dense")

# Objective kind -> the names of its values, every one maximised (see dmo.search.objectives).
OBJECTIVES: dict[str, tuple[str, ...]] = {
    "mean": ("mean",),
    "weighted": ("weighted",),
    "worst": ("worst",),
    "multi": ("mean", "worst"),
}

# How a search chooses the anchor subset it scores trials on (dmo.search.anchors.ANCHOR_RULES).
ANCHOR_RULES: tuple[str, ...] = ("random", "disagreement", "stratified")

# Synthetic evaluation-only sets (dmo.data.synthetic.BENCHMARK_GENERATORS).
BENCHMARK_GENERATORS: tuple[str, ...] = ("count_color", "chart_value", "shape_present")

# Benchmark metrics: the text scorers of dmo.evaluation.scorers, answer likelihood (read from logits),
# and lmms-eval (a task of that harness scores the model itself: dmo.evaluation.lmms_eval).
METRICS: tuple[str, ...] = ("exact_match", "vqa_accuracy", "anls", "relaxed_accuracy", "multiple_choice",
                            "yes_no_accuracy", "yes_no_f1", "likelihood", "lmms_eval")

# The frozen vision tower of the mod_mllm backend: kept at base values in every merge.
VISION_TOWER_PATTERN = "model.vision_tower.*"


def unknown_name(value: str, known: tuple[str, ...] | list[str], what: str) -> str:
    """The message for a name outside a registry."""
    return f"unknown {what} {value!r}; known: {', '.join(known)}"


__all__ = ["BANK_LAYOUTS", "FUSED_MERGE_METHODS", "MERGE_METHODS", "MULTI_OBJECTIVE_SAMPLERS", "OBJECTIVES", "SAMPLERS", "VISION_TOWER_PATTERN", "unknown_name"]
