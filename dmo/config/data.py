"""The data a project trains and scores on: its domains and its benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from dmo.config import names
from dmo.config.fields import Frozen, Identifier, known_name

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


MetricName = Annotated[str, known_name(names.METRICS, "metric")]
GeneratorName = Annotated[str, known_name(names.BENCHMARK_GENERATORS, "benchmark generator")]


class BenchmarkSettings(Frozen):
    """An evaluation set apart from the training domains, scored with its own metric."""

    name: Identifier = Field(description="Lower-case identifier, used in scores, tables and the objective.")
    file: Path | None = Field(None, description="LLaMA-Factory ShareGPT JSONL; an optional 'answers' list per line "
                                                "holds every reference answer (else the assistant turn is the one "
                                                "reference); image paths relative to the file.")
    generator: GeneratorName | None = Field(None, description="Instead of a file: a synthetic evaluation set, one of "
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
    metric: MetricName = Field("exact_match", description="A scorer of dmo.evaluation.scorers, 'likelihood', or "
                                                          "'lmms_eval' for an lmms_eval task.")
    weight: float = Field(1.0, gt=0, description="Its weight in the mean objective over search benchmarks.")

    @model_validator(mode="after")
    def _one_source(self) -> BenchmarkSettings:
        if sum(source is not None for source in (self.file, self.generator, self.domain, self.lmms_eval)) != 1:
            raise ValueError("give a benchmark exactly one of 'file', 'generator', 'domain' and 'lmms_eval'")
        if (self.lmms_eval is not None) != (self.metric == "lmms_eval"):
            raise ValueError("an 'lmms_eval' task is scored by metric 'lmms_eval', and that metric needs the task: "
                             "give both or neither")
        return self
