"""Typed, frozen configuration of a dmo project.

A YAML file is parsed once at the edge (:func:`dmo.config.load_config`) into
these models; nothing past the CLI passes raw dicts around. Unknown keys are
refused so a typo fails loudly instead of silently taking a default.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from dmo.config import names

DOMAIN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_IMAGE_SIZE = 1024
# Domains are generated and held in memory as uint8 images; past this the machine, not the
# config, would say no (image_size 4096 with 3,500 samples asked for 89 GiB).
MAX_IMAGE_BYTES = 4 << 30


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _identifier(value: str) -> str:
    if not DOMAIN_NAME.match(value):
        raise ValueError("must match [a-z][a-z0-9_]* (at most 32 characters)")
    return value


# A name used in weights, scores, tables, recipes and file names.
Identifier = Annotated[str, AfterValidator(_identifier)]


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


# --------------------------------------------------------------------------- domains


class SplitSizes(Frozen):
    train: int = Field(2000, ge=1)
    dev: int = Field(200, ge=1)
    test: int = Field(200, ge=1)


class SyntheticSource(Frozen):
    kind: Literal["synthetic"] = "synthetic"
    generator: Literal["general", "ocr", "digit", "counting", "counting_among", "chart", "video_count", "video_motion",
                       "video_change"] = Field(description="A domain of dmo.data.synthetic; the video_* ones are "
                                                           "clips of 4 frames (model.num_frames: 4).")


class JsonlSource(Frozen):
    """A user's domain in the LLaMA-Factory ShareGPT format: one file per split."""

    kind: Literal["jsonl"] = "jsonl"
    train: Path
    dev: Path
    test: Path


DomainSource = Annotated[SyntheticSource | JsonlSource, Field(discriminator="kind")]


class DomainSettings(Frozen):
    name: Identifier = Field(description="Lower-case identifier, used in weights, tables and recipes.")
    source: DomainSource
    sizes: SplitSizes = SplitSizes()


# --------------------------------------------------------------------------- benchmarks


class LmmsEvalTask(Frozen):
    """A benchmark scored by lmms-eval: one task of a local task folder, run on the model in memory."""

    task: str = Field(description="The task's name (the 'task:' of its YAML).")
    tasks_dir: Path = Field(description="The folder of the task's YAML and utils.py (lmms-eval's --include_path); "
                                        "relative to the config. Its data must be local: nothing is downloaded.")
    score: str = Field(description="The key of the task's result that is this benchmark's score, e.g. "
                                   "exact_match (lmms-eval's 'exact_match,none').")
    points_per_unit: float = Field(100.0, gt=0, description="Points (0-100) per unit of that result: 100 for a "
                                                            "fraction, 1 for a task that reports points.")
    limit: int | None = Field(None, ge=1, description="Score only the task's first N documents.")


class BenchmarkSettings(Frozen):
    """An evaluation set apart from the training domains, scored with its own metric."""

    name: Identifier = Field(description="Lower-case identifier, used in scores, tables and the objective.")
    file: Path | None = Field(None, description="LLaMA-Factory ShareGPT JSONL; an optional 'answers' list per line "
                                                "holds every reference answer (else the assistant turn is the one "
                                                "reference); image paths relative to the file.")
    generator: str | None = Field(None, description="Instead of a file: a synthetic evaluation set, one of "
                                                    + ", ".join(names.BENCHMARK_GENERATORS) + ".")
    size: int = Field(200, ge=1, description="Samples a generator draws (seeded by project.seed and the name).")
    domain: str | None = Field(None, description="Instead of a file: this training domain's dev split (test split "
                                                 "for a report benchmark), scored by this benchmark's metric.")
    lmms_eval: LmmsEvalTask | None = Field(None, description="Instead of a file: an lmms-eval task, with metric "
                                                             "'lmms_eval' (needs pip install 'dmo[lmms]').")
    role: Literal["search", "report"] = Field(
        "search", description="'search': scored on every proxy; 'report': never read by a search, only by "
                              "dmo eval --benchmarks report, so the mixture is judged on data it was not chosen on "
                              "(a report benchmark over a domain is its test split).")
    metric: str = Field("exact_match", description="A scorer of dmo.evaluation.scorers, 'likelihood', or "
                                                   "'lmms_eval' for an lmms_eval task.")
    weight: float = Field(1.0, gt=0, description="Its weight in the mean objective over search benchmarks.")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in names.METRICS:
            raise ValueError(names.unknown_name(value, names.METRICS, "metric"))
        return value

    @field_validator("generator")
    @classmethod
    def _known_generator(cls, value: str | None) -> str | None:
        if value is not None and value not in names.BENCHMARK_GENERATORS:
            raise ValueError(names.unknown_name(value, names.BENCHMARK_GENERATORS, "benchmark generator"))
        return value

    @model_validator(mode="after")
    def _one_source(self) -> BenchmarkSettings:
        if sum(source is not None for source in (self.file, self.generator, self.domain, self.lmms_eval)) != 1:
            raise ValueError("give a benchmark exactly one of 'file', 'generator', 'domain' and 'lmms_eval'")
        if (self.lmms_eval is not None) != (self.metric == "lmms_eval"):
            raise ValueError("an 'lmms_eval' task is scored by metric 'lmms_eval', and that metric needs the task: "
                             "give both or neither")
        return self


# --------------------------------------------------------------------------- model


class ModSettings(Frozen):
    """The efficiency settings of a Mixture-of-Depths model (p-MoD)."""

    schedule: Literal["prd_shifted_cosine", "constant", "linear", "explicit", "dense", "video_per_frame"] = Field(
        "prd_shifted_cosine", description="'video_per_frame' (VideoLLM-MoD): the first layer dense, each other layer "
                                          "keeps ⌈frame_retention·n⌉ of every frame's n vision tokens.")
    retention: tuple[float, ...] | None = Field(
        None, description="Per-layer vision-token retention; only with schedule 'explicit'."
    )
    constant: float = Field(0.5, gt=0, le=1, description="Retention of schedule 'constant'.")
    dense_above: float = Field(0.85, gt=0, le=1, description="Layers above this retention stay dense.")
    floor: float = Field(0.15, gt=0, le=1, description="Lowest retention a routed layer gets.")
    frame_retention: float = Field(0.2, gt=0, le=1, description="Share of each frame's vision tokens a routed layer "
                                                               "keeps under schedule 'video_per_frame' (r).")
    tanh_alpha: float = Field(0.2, gt=0, description="TanhNorm scale α in g = α·tanh(r) + β.")
    tanh_beta: float = Field(1.0, description="TanhNorm offset β.")

    @model_validator(mode="after")
    def _explicit_needs_retention(self) -> ModSettings:
        if (self.schedule == "explicit") != (self.retention is not None):
            raise ValueError("'retention' is given exactly when schedule is 'explicit'")
        if self.retention is not None and not all(0 < r <= 1 for r in self.retention):
            raise ValueError("every retention must lie in (0, 1]")
        return self


class ModMllmSettings(Frozen):
    """dmo's own tiny LLaVA-shaped MoD MLLM, built from config and trained from scratch (``mod_mllm``)."""

    backend: Literal["mod_mllm"] = "mod_mllm"
    image_size: int = Field(32, ge=8, le=MAX_IMAGE_SIZE)
    patch_size: int = Field(4, ge=1)
    vision_hidden_size: int = Field(64, ge=8)
    vision_layers: int = Field(2, ge=1)
    vision_heads: int = Field(4, ge=1)
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(8, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(344, ge=8)
    max_position_embeddings: int = Field(256, ge=16)
    rope_theta: float = Field(10000.0, gt=0)
    num_frames: int = Field(1, ge=1, le=64, description="Frames per sample: 1 for images; a video model reads this "
                                                        "many frames per video, and an image as that many copies.")
    mod: ModSettings = ModSettings()

    @model_validator(mode="after")
    def _shapes_divide(self) -> ModMllmSettings:
        if self.image_size % self.patch_size:
            raise ValueError("image_size must be a multiple of patch_size")
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be a multiple of num_heads")
        if self.vision_hidden_size % self.vision_heads:
            raise ValueError("vision_hidden_size must be a multiple of vision_heads")
        if self.mod.retention is not None and len(self.mod.retention) != self.num_layers:
            raise ValueError("mod.retention needs one value per decoder layer (num_layers)")
        if self.num_image_tokens + 2 > self.max_position_embeddings:
            raise ValueError(
                f"{self.num_image_tokens} image tokens (num_frames · (image_size / patch_size)²) leave no room for "
                f"text in max_position_embeddings = {self.max_position_embeddings}; raise patch_size or "
                "max_position_embeddings"
            )
        return self

    @property
    def num_image_tokens(self) -> int:
        return self.num_frames * (self.image_size // self.patch_size) ** 2


class HfModelSettings(Frozen):
    """A local Hugging Face checkpoint directory (``hf``): LLaVA or Qwen2-VL, with its tokenizer and image
    processor. It is the pretrained base as it is: experts fine-tune it directly, nothing is downloaded."""

    backend: Literal["hf"]
    path: Path = Field(description="Checkpoint directory (config.json, weights, tokenizer, preprocessor_config.json).")
    image_size: int = Field(
        32, ge=8, le=MAX_IMAGE_SIZE, description="Side of the domains' images before the checkpoint's processor."
    )
    mod: ModSettings = ModSettings()
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="Weights in memory while training and scoring.")

    @model_validator(mode="after")
    def _image_schedules_only(self) -> HfModelSettings:
        if self.mod.schedule == "video_per_frame":
            raise ValueError("schedule 'video_per_frame' routes video frames, which only the mod_mllm backend reads "
                             "so far; use an image schedule with an hf checkpoint")
        return self


def _model_backend(value: object) -> str:
    """The backend a model section names; a section without one is dmo's own model."""
    if isinstance(value, dict):
        return str(value.get("backend", "mod_mllm"))
    return str(getattr(value, "backend", "mod_mllm"))


ModelSettings = Annotated[
    Annotated[ModMllmSettings, Tag("mod_mllm")] | Annotated[HfModelSettings, Tag("hf")],
    Discriminator(_model_backend),
]


class TokenizerSettings(Frozen):
    vocab_size: int = Field(384, ge=64, description="BPE vocabulary size trained on the domains' text.")


# --------------------------------------------------------------------------- training


class LoraSettings(Frozen):
    r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class TrainingSettings(Frozen):
    """One stage of the one training loop (base, expert or mixture)."""

    steps: int = Field(ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Cosine decays to lr·min_lr_ratio.")
    warmup_steps: int = Field(20, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    finetune: Literal["full", "lora"] = "full"
    lora: LoraSettings = LoraSettings()
    freeze_vision: bool = Field(True, description="Keep the vision tower frozen (base training ignores it).")
    checkpoint_every: int = Field(0, ge=0, description="Steps between resumable checkpoints; 0 = at the end only.")

    @property
    def sample_budget(self) -> int:
        """Samples seen by one run: the budget N shared by experts and mixture models."""
        return self.steps * self.batch_size


SHA256_HEX = r"^[0-9a-f]{64}$"


class PretrainedBase(Frozen):
    """A base trained once and kept with the project (the demo ships one in ``configs/bases/demo``).

    Made by ``dmo train base -c CONFIG --from-scratch --out DIR``; a project that names it adopts it
    instead of training its base again, once its weights and its training key are checked
    (:mod:`dmo.training.shipped_base`)."""

    path: Path = Field(description="The checkpoint directory, relative to the config file.")
    weights_sha256: str = Field(pattern=SHA256_HEX, description="sha256 of its model.safetensors: the pin that "
                                                                 "`dmo train base --from-scratch --out` prints.")


class TrainingStages(Frozen):
    base: TrainingSettings = TrainingSettings(steps=300, lr=1e-3, freeze_vision=False)
    pretrained_base: PretrainedBase | None = Field(
        None, description="Adopt this checkpoint as the base instead of training it (dmo's own model only)."
    )
    base_mixture: dict[str, float] | None = Field(
        None, description="Domain weights of the base's pretraining data (normalised; a domain may be 0, so "
        "its skill is left for its expert to learn); default uniform over the domains."
    )
    expert: TrainingSettings = TrainingSettings(steps=500, lr=1e-3)
    mixture: TrainingSettings | None = Field(
        None, description="Mixture-model SFT; defaults to the expert stage (same budget and schedule)."
    )
    threads: int = Field(1, ge=1, description="torch threads per training task.")
    heartbeat_s: int = Field(
        30, ge=1, description="A trainer beats its claim this often; silent for 3 beats, it is presumed dead "
        "and another caller takes the training over."
    )

    def mixture_stage(self) -> TrainingSettings:
        return self.mixture or self.expert


# --------------------------------------------------------------------------- evaluation


class EvaluationSettings(Frozen):
    score: Literal["exact_match", "likelihood"] = Field(
        "exact_match", description="Per-benchmark score in points (0-100) that searches optimise."
    )
    max_new_tokens: int = Field(8, ge=1)
    batch_size: int = Field(128, ge=1)
    dev_limit: int | None = Field(None, ge=1, description="Use only the first n dev samples per domain.")


# --------------------------------------------------------------------------- search


class ObjectiveSettings(Frozen):
    kind: Literal["mean", "weighted", "worst", "multi"] = "mean"
    weights: dict[str, float] | None = Field(None, description="Benchmark weights of kind 'weighted'.")

    @model_validator(mode="after")
    def _weights_only_when_weighted(self) -> ObjectiveSettings:
        if (self.kind == "weighted") != (self.weights is not None):
            raise ValueError("'weights' is given exactly when kind is 'weighted'")
        return self


class MergeSettings(Frozen):
    method: str = Field("task_arithmetic", description="A name from dmo.merging's registry.")
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

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in names.MERGE_METHODS:
            raise ValueError(names.unknown_name(value, list(names.MERGE_METHODS), "merge method"))
        return value

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
    rule: str = Field("random", description="How the subset is chosen (dmo.search.anchors): "
                                            + ", ".join(names.ANCHOR_RULES) + ".")
    rescore_top: int = Field(5, ge=1, description="How many of the best trials are scored again on the full "
                                                  "benchmarks when the search ends; dmo best ranks them first.")

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, value: str) -> str:
        if value not in names.ANCHOR_RULES:
            raise ValueError(names.unknown_name(value, names.ANCHOR_RULES, "anchor rule"))
        return value


class SearchSettings(Frozen):
    # gp by default: on the demo's world it came within 0.5 of the dense grid's best in a median of 16
    # evaluations over 10 seeds, TPE in 34 and random search in none of 40 (docs/benchmarks.md §3).
    sampler: str = Field("gp", description=f"One of {', '.join(names.SAMPLERS)}.")
    trials: int = Field(40, ge=1)
    seed: int = Field(0, ge=0)
    evaluators: int = Field(2, ge=1, description="Proxy evaluators = trials in flight at once.")
    warm_start: tuple[Literal["uniform", "grid"], ...] = ("uniform",)
    objective: ObjectiveSettings = ObjectiveSettings()
    merge: MergeSettings = MergeSettings()
    pruning: PruningSettings = PruningSettings()
    anchors: AnchorSettings | None = Field(None, description="Score trials on an anchor subset; None: every sample.")
    heartbeat_s: int = Field(30, ge=1, description="RUNNING trials silent this long are failed and retried.")

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, value: str) -> str:
        if value not in names.SAMPLERS:
            raise ValueError(names.unknown_name(value, names.SAMPLERS, "sampler"))
        return value

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
