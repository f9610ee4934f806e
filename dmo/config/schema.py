"""Typed, frozen configuration of a dmo project: the root model and the small sections beside it.

A YAML file is parsed once at the edge (:func:`dmo.config.load_config`) into
these models; nothing past the CLI passes raw dicts around. Unknown keys are
refused so a typo fails loudly instead of silently taking a default. The larger
sections live in their own modules (data, model, training, search) and are
re-exported here, so ``dmo.config.schema`` names every settings type.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from dmo.config.data import (
    BenchmarkSettings,
    DomainSettings,
    DomainSource,
    JsonlSource,
    LmmsEvalTask,
    SplitSizes,
    SyntheticSource,
)
from dmo.config.fields import DOMAIN_NAME, MAX_IMAGE_BYTES, MAX_IMAGE_SIZE, Frozen, Identifier
from dmo.config.model import (
    HfModelSettings,
    ModelSettings,
    ModMllmSettings,
    ModSettings,
    TokenizerSettings,
)
from dmo.config.search import (
    AnchorSettings,
    MergeSettings,
    ObjectiveSettings,
    PruningSettings,
    SearchSettings,
)
from dmo.config.training import (
    SHA256_HEX,
    LoraSettings,
    PretrainedBase,
    TrainingSettings,
    TrainingStages,
)

__all__ = [
    "DOMAIN_NAME", "MAX_IMAGE_BYTES", "MAX_IMAGE_SIZE", "SHA256_HEX",
    "AnchorSettings", "BenchmarkSettings", "DmoConfig", "DomainSettings", "DomainSource", "EvaluationSettings",
    "Frozen", "HfModelSettings", "Identifier", "JsonlSource", "LmmsEvalTask", "LoraSettings", "MergeSettings",
    "ModMllmSettings", "ModSettings", "ModelSettings", "ObjectiveSettings", "PretrainedBase", "ProjectSettings",
    "PruningSettings", "RaySettings", "SearchSettings", "SplitSizes", "SyntheticSource", "TokenizerSettings",
    "TrainingSettings", "TrainingStages",
]


# --------------------------------------------------------------------------- project


class ProjectSettings(Frozen):
    name: str = Field("dmo", description="Human-readable project name.")
    workdir: Path = Field(Path(".dmo"), description="Where data, checkpoints and the SQLite store live.")
    store_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the store; default sqlite:///<workdir>/dmo.sqlite. "
        "Use postgresql+psycopg://user@host/db on a cluster.",
    )
    seed: int = Field(0, ge=0, description="Seed of data generation and of every training run.")

    def resolved_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.workdir / 'dmo.sqlite').resolve()}"


# --------------------------------------------------------------------------- evaluation


class EvaluationSettings(Frozen):
    score: Literal["exact_match", "likelihood"] = Field(
        "exact_match", description="Per-benchmark score in points (0-100) that searches optimise."
    )
    max_new_tokens: int = Field(8, ge=1)
    batch_size: int = Field(128, ge=1)
    dev_limit: int | None = Field(None, ge=1, description="Use only the first n dev samples per domain.")


# --------------------------------------------------------------------------- where work runs


class RaySettings(Frozen):
    address: str | None = Field(None, description="Ray cluster address; None starts a local Ray.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray; None = all.")
    gpus_per_trainer: float = Field(0.0, ge=0, description="GPUs each training task asks Ray for (e.g. 1); 0 = CPU.")
    gpus_per_evaluator: float = Field(
        0.0, ge=0, description="GPUs each proxy evaluator asks Ray for; a fraction (e.g. 0.5) shares one; 0 = CPU."
    )

    @field_validator("gpus_per_trainer", "gpus_per_evaluator")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError("Ray grants a fraction of one GPU or a whole number of them: use ≤ 1 or an integer")
        return value


# --------------------------------------------------------------------------- root


class DmoConfig(Frozen):
    project: ProjectSettings = ProjectSettings()
    domains: tuple[DomainSettings, ...] = Field(min_length=1)
    benchmarks: tuple[BenchmarkSettings, ...] = Field(
        (), description="Evaluation sets apart from the domains; none: each domain's dev split is a benchmark.")
    model: ModelSettings = ModMllmSettings()
    tokenizer: TokenizerSettings = TokenizerSettings()
    training: TrainingStages = TrainingStages()
    evaluation: EvaluationSettings = EvaluationSettings()
    search: SearchSettings = SearchSettings()
    ray: RaySettings = RaySettings()

    @model_validator(mode="before")
    @classmethod
    def _lora_by_default_for_pretrained_mllms(cls, data: Any) -> Any:
        """A pretrained Hugging Face MLLM is fine-tuned the reference study's way unless the file says
        otherwise: LoRA r 16, alpha 32 on the decoder's linear layers (routers in full), for experts and
        mixture models alike. dmo's own small model keeps full fine-tuning."""
        if not (isinstance(data, dict) and isinstance(data.get("model"), dict) and data["model"].get("backend") == "hf"):
            return data
        training = dict(data.get("training") or {})
        for stage, default in (("expert", {"steps": 500, "lr": 1e-3}), ("mixture", None)):
            given = training.get(stage, default)  # no mixture stage: it is the expert stage, LoRA included
            if not isinstance(given, dict):
                continue  # absent, or malformed: validation reports it with its line
            settings = dict(given)
            settings.setdefault("finetune", "lora")
            if settings["finetune"] == "lora" and isinstance(settings.get("lora", {}), dict):
                settings["lora"] = {"r": 16, "alpha": 32.0, **settings.get("lora", {})}
            training[stage] = settings
        return {**data, "training": training}

    @field_validator("domains")
    @classmethod
    def _domains_unique(cls, domains: tuple[DomainSettings, ...]) -> tuple[DomainSettings, ...]:
        # A field validator, so the error points at the `domains:` list, not the file's first line.
        names = [d.name for d in domains]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"duplicate domain names: {name} (domains[{names.index(name)}] and domains[{index}])")
        return domains

    @model_validator(mode="after")
    def _pretrained_base_is_dmo_s_own(self) -> DmoConfig:
        if self.training.pretrained_base is not None and self.model.backend != "mod_mllm":
            raise ValueError("training.pretrained_base names a base for dmo's own model; with backend "
                             f"{self.model.backend!r}, model.path is the base already")
        return self

    @model_validator(mode="after")
    def _base_mixture_names_domains(self) -> DmoConfig:
        weights = self.training.base_mixture
        if weights is not None and self.model.backend != "mod_mllm":
            raise ValueError("training.base_mixture weighs the data of a base dmo trains; with backend "
                             f"{self.model.backend!r}, model.path is the base already")
        if weights is not None:
            unknown = sorted(set(weights) - set(self.domain_names))
            if unknown:
                raise ValueError(f"training.base_mixture names unknown domains: {', '.join(unknown)}; "
                                 f"configured: {', '.join(self.domain_names)}")
            if any(not math.isfinite(w) or w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ValueError("training.base_mixture weights must be non-negative numbers with a positive sum")
        return self

    @model_validator(mode="after")
    def _images_fit_in_memory(self) -> DmoConfig:
        samples = sum(d.sizes.train + d.sizes.dev + d.sizes.test for d in self.domains)
        samples += sum(b.size for b in self.benchmarks if b.generator is not None)
        needed = samples * self.model.image_size**2 * 3
        if needed > MAX_IMAGE_BYTES:
            raise ValueError(
                f"model.image_size {self.model.image_size} makes the {samples:,} samples of the domains take "
                f"{needed / 2**30:.1f} GiB as images; at most {MAX_IMAGE_BYTES / 2**30:.0f} GiB fit: lower "
                "image_size or the domains' sizes"
            )
        return self

    @field_validator("benchmarks")
    @classmethod
    def _benchmarks_unique_with_one_to_search(cls, benchmarks: tuple[BenchmarkSettings, ...]) -> tuple[BenchmarkSettings, ...]:
        names = [b.name for b in benchmarks]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"duplicate benchmark names: {name} (benchmarks[{names.index(name)}] and "
                                 f"benchmarks[{index}])")
        if benchmarks and not any(b.role == "search" for b in benchmarks):
            raise ValueError("no benchmark has role 'search': a search would have nothing to score")
        return benchmarks

    @model_validator(mode="after")
    def _benchmark_domains_exist(self) -> DmoConfig:
        for index, benchmark in enumerate(self.benchmarks):
            if benchmark.domain is not None and benchmark.domain not in self.domain_names:
                raise ValueError(f"benchmarks[{index}].domain names unknown domain {benchmark.domain!r}; "
                                 f"configured: {', '.join(self.domain_names)}")
        return self

    @model_validator(mode="after")
    def _objective_weights_name_benchmarks(self) -> DmoConfig:
        names = self.benchmark_names
        weights = self.search.objective.weights
        if weights is not None:
            unknown = sorted(set(weights) - set(names))
            if unknown:
                what = "search benchmarks" if self.benchmarks else "domains"
                raise ValueError(f"search.objective.weights names unknown {what}: {', '.join(unknown)}")
            if any(b.weight != 1.0 for b in self.benchmarks):
                raise ValueError("benchmark weights and search.objective.weights both weigh benchmarks: keep one")
        return self

    @property
    def benchmark_names(self) -> tuple[str, ...]:
        """What a search scores: the search-role benchmarks, or each domain's dev split."""
        if self.benchmarks:
            return tuple(b.name for b in self.benchmarks if b.role == "search")
        return self.domain_names

    @property
    def domain_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.domains)
