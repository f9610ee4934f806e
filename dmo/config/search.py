"""The search section: the objective, how proxies are merged and scored, and the sampler that proposes them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from dmo.config import names
from dmo.config.fields import Frozen, known_name

# Registry names, each refused with the known ones listed (dmo.config.fields.known_name).
SamplerName = Annotated[str, known_name(names.SAMPLERS, "sampler")]
MergeMethodName = Annotated[str, known_name(names.MERGE_METHODS, "merge method")]
AnchorRuleName = Annotated[str, known_name(names.ANCHOR_RULES, "anchor rule")]


class ObjectiveSettings(Frozen):
    kind: Literal["mean", "weighted", "worst", "multi"] = "mean"
    weights: dict[str, float] | None = Field(None, description="Benchmark weights of kind 'weighted'.")

    @model_validator(mode="after")
    def _weights_only_when_weighted(self) -> ObjectiveSettings:
        if (self.kind == "weighted") != (self.weights is not None):
            raise ValueError("'weights' is given exactly when kind is 'weighted'")
        return self


class MergeSettings(Frozen):
    method: MergeMethodName = Field("task_arithmetic", description="A name from dmo.merging's registry.")
    params: dict[str, float] = Field(default_factory=dict, description="Method parameters, e.g. lambda.")
    exclude: tuple[str, ...] | None = Field(
        None, description="Parameters that keep base values (globs); default the model's frozen vision tower."
    )
    weight_power: float = Field(
        1.0, gt=0, le=4, description="Merge coefficients w_i^p / Σ w_j^p for data mixture w: 1 merges w as it is; "
        "below 1 a small share of an easy domain gets more of its task vector, the way a model trained on the "
        "mixture saturates that domain (docs/fidelity.md).")
    dtype: Literal["float32", "bfloat16"] = "float32"
    bank: Literal["auto", "factored", "dense"] = Field(
        "auto", description="How LoRA experts are held: as factors (K adapters of memory, a hook per adapted "
        "matrix) or folded into dense task vectors (K models of memory, plain forwards); auto: factors unless "
        "their hooks add over 10 % of the matrices' work and the dense bank fits in 1 GiB (dmo/merging/banks.py).")

    @model_validator(mode="after")
    def _factored_needs_a_linear_merge(self) -> MergeSettings:
        if self.bank == "factored" and self.method not in names.FUSED_MERGE_METHODS:
            raise ValueError(f"bank 'factored' keeps LoRA factors, which {self.method!r} cannot merge (it "
                             "sparsifies dense task vectors); use it with "
                             + " or ".join(names.FUSED_MERGE_METHODS) + ", or drop bank")
        return self

    @model_validator(mode="after")
    def _known_params(self) -> MergeSettings:
        allowed = names.MERGE_METHODS[self.method]
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise ValueError(
                f"method {self.method!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters: {', '.join(allowed)}"
            )
        return self


class PruningSettings(Frozen):
    enabled: bool = False
    subset: int = Field(32, ge=1, description="Dev samples per benchmark scored before the full set.")


class AnchorSettings(Frozen):
    """Subset scoring: trials scored on an anchor subset of each search benchmark, the best rescored in full."""

    fraction: float = Field(0.25, gt=0, le=1, description="Share of each benchmark's samples in its anchor subset, "
                                                          "chosen once when the search first runs.")
    rule: AnchorRuleName = Field("random", description="How the subset is chosen (dmo.search.anchors): "
                                            + ", ".join(names.ANCHOR_RULES) + ".")
    rescore_top: int = Field(5, ge=1, description="How many of the best trials are scored again on the full "
                                                  "benchmarks when the search ends; dmo best ranks them first.")


class SearchSettings(Frozen):
    # gp by default: on the demo's world it came within 0.5 of the dense grid's best in a median of 16
    # evaluations over 10 seeds, TPE in 34 and random search in none of 40 (docs/benchmarks.md §3).
    sampler: SamplerName = Field("gp", description=f"One of {', '.join(names.SAMPLERS)}.")
    trials: int = Field(40, ge=1)
    seed: int = Field(0, ge=0)
    evaluators: int = Field(2, ge=1, description="Proxy evaluators = trials in flight at once.")
    warm_start: tuple[Literal["uniform", "grid"], ...] = ("uniform",)
    objective: ObjectiveSettings = ObjectiveSettings()
    merge: MergeSettings = MergeSettings()
    pruning: PruningSettings = PruningSettings()
    anchors: AnchorSettings | None = Field(None, description="Score trials on an anchor subset; None: every sample.")
    heartbeat_s: int = Field(30, ge=1, description="RUNNING trials silent this long are failed and retried.")

    @model_validator(mode="after")
    def _anchors_fit(self) -> SearchSettings:
        if self.anchors is not None and self.pruning.enabled:
            raise ValueError("anchors and pruning both score trials on a subset first: enable one")
        if self.anchors is not None and self.objective.kind == "multi":
            raise ValueError("anchors rescore the best trials, and objective kind 'multi' has no single best: "
                             "drop one")
        if self.pruning.enabled and self.objective.kind == "multi":  # Optuna's Trial.report refuses it mid-search
            raise ValueError("pruning compares one objective value per trial, and objective kind 'multi' has "
                             "several: drop one")
        return self

    @model_validator(mode="after")
    def _sampler_fits_objective(self) -> SearchSettings:
        if self.objective.kind == "multi" and self.sampler not in names.MULTI_OBJECTIVE_SAMPLERS:
            raise ValueError(
                f"sampler {self.sampler!r} optimises a single objective only; with objective kind "
                f"'multi' use one of: {', '.join(names.MULTI_OBJECTIVE_SAMPLERS)}"
            )
        return self
