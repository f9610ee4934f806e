"""Score a model on benchmarks: pure computation over encoded splits, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from dmo.data.encoding import IGNORE, EncodedSplit, on_device, prompt_batch, training_batch
from dmo.data.prepared import PreparedData
from dmo.evaluation.benchmarks import Benchmark, check_metric
from dmo.models.backends.base import ModelBackend


@dataclass(frozen=True)
class BenchmarkScore:
    exact_match: float  # points, 0-100
    likelihood: float  # points, 0-100
    samples: int


@dataclass(frozen=True)
class EvaluationResult:
    split: str
    benchmarks: dict[str, BenchmarkScore]

    def scores(self, metric: str) -> dict[str, float]:
        check_metric(metric)
        return {name: getattr(score, metric) for name, score in self.benchmarks.items()}

    def average(self, metric: str) -> float:
        values = list(self.scores(metric).values())
        return sum(values) / len(values)

    def to_dict(self) -> dict:
        return {
            "split": self.split,
            "benchmarks": {name: asdict(score) for name, score in self.benchmarks.items()},
            "average": {m: self.average(m) for m in ("exact_match", "likelihood")},
        }


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: PreparedData,
    benchmarks: Sequence[Benchmark],
    *,
    backend: ModelBackend,
    max_new_tokens: int = 8,
    batch_size: int = 128,
    limit: int | None = None,
) -> EvaluationResult:
    was_training = model.training
    model.eval()
    splits = {b.split for b in benchmarks}
    if len(splits) != 1:
        raise ValueError(f"benchmarks of one evaluation share a split, got {sorted(splits)}")
    results = {}
    for benchmark in benchmarks:
        split = data.encoded(benchmark.domain, benchmark.split)
        n = len(split) if limit is None else min(limit, len(split))
        hits, likelihood = 0.0, 0.0
        for start in range(0, n, batch_size):
            indices = list(range(start, min(n, start + batch_size)))
            hits += _exact_matches(model, backend, split, indices, data.pad_id, data.eos_id, max_new_tokens)
            likelihood += _answer_likelihoods(model, split, indices, data.pad_id)
        results[benchmark.name] = BenchmarkScore(
            exact_match=100.0 * hits / n, likelihood=100.0 * likelihood / n, samples=n
        )
    model.train(was_training)
    return EvaluationResult(split=splits.pop(), benchmarks=results)


def _exact_matches(model, backend: ModelBackend, split: EncodedSplit, indices: list[int], pad: int, eos: int,
                   max_new_tokens: int) -> int:
    batch = on_device(prompt_batch(split, indices, pad), _device(model))
    generated = backend.generate(model, batch, max_new_tokens=max_new_tokens, eos_id=eos, pad_id=pad).tolist()
    hits = 0
    for row, i in zip(generated, indices):
        answer = split.answers[i]  # ends with the end of the turn
        hits += row[: len(answer)] == answer
    return hits


def _answer_likelihoods(model, split: EncodedSplit, indices: list[int], pad: int) -> float:
    """Sum over samples of exp(−mean NLL of the answer tokens)."""
    batch = on_device(training_batch(split, indices, pad), _device(model))
    labels = batch.pop("labels")[:, 1:]
    logits = model(**batch).logits[:, :-1]  # (B, T-1, V): predicts token t+1
    mask = labels != IGNORE
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    picked = logprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    mean_nll = -(picked * mask).sum(1) / mask.sum(1)
    return float(torch.exp(-mean_nll).sum())


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
