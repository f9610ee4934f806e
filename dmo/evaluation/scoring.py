"""Score a model on benchmarks: pure computation over encoded splits, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from dmo.data.encoding import IGNORE, EncodedSplit, on_device, prompt_batch, training_batch
from dmo.data.prepared import PreparedData
from dmo.evaluation.benchmarks import Benchmark, check_metric
from dmo.evaluation.scorers import get_scorer
from dmo.models.backends.base import ModelBackend


@dataclass(frozen=True)
class BenchmarkScore:
    exact_match: float | None  # points, 0-100; None for an lmms-eval task, which dmo does not decode
    likelihood: float | None  # points, 0-100; None where the benchmark's metric does not need the extra pass
    samples: int
    metric: str | None = None  # a declared benchmark's metric
    score: float | None = None  # points, 0-100, by that metric


@dataclass(frozen=True)
class EvaluationResult:
    split: str
    benchmarks: dict[str, BenchmarkScore]

    def scores(self, metric: str) -> dict[str, float]:
        """Each benchmark's score in ``metric`` ("benchmark": by its own metric); benchmarks without one are left out."""
        check_metric(metric)
        field = "score" if metric == "benchmark" else metric
        return {name: value for name, score in self.benchmarks.items()
                if (value := getattr(score, field)) is not None}

    def average(self, metric: str) -> float | None:
        values = list(self.scores(metric).values())
        return sum(values) / len(values) if values else None

    def to_dict(self) -> dict:
        metrics = ("benchmark", "exact_match", "likelihood") if self.scores("benchmark") else ("exact_match", "likelihood")
        return {
            "split": self.split,
            "benchmarks": {name: asdict(score) for name, score in self.benchmarks.items()},
            "average": {m: self.average(m) for m in metrics},
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
        if benchmark.lmms_eval is not None:
            # The optional harness: imported only when a benchmark asks for it.
            from dmo.evaluation.lmms import score_task

            score, n = score_task(model, backend, data.encoder, benchmark.lmms_eval, max_new_tokens=max_new_tokens,
                                  batch_size=batch_size, limit=limit, where=f"benchmark {benchmark.name}")
            results[benchmark.name] = BenchmarkScore(exact_match=None, likelihood=None, samples=n,
                                                     metric=benchmark.metric, score=score)
            continue
        if benchmark.metric is None:
            split = data.encoded(benchmark.domain, benchmark.split)
        else:
            split = data.encoded_benchmark(benchmark.name)
        n = len(split) if limit is None else min(limit, len(split))
        hits, likelihood, generated = 0.0, 0.0, []
        needs_likelihood = benchmark.metric in (None, "likelihood")
        for start in range(0, n, batch_size):
            indices = list(range(start, min(n, start + batch_size)))
            rows = _generate(model, backend, split, indices, data.pad_id, data.eos_id, max_new_tokens)
            hits += sum(row[: len(split.answers[i])] == split.answers[i] for row, i in zip(rows, indices))
            generated += rows
            if needs_likelihood:
                likelihood += _answer_likelihoods(model, split, indices, data.pad_id)
        score = None
        if benchmark.metric == "likelihood":
            score = 100.0 * likelihood / n
        elif benchmark.metric is not None:
            predictions = [data.encoder.decode(until_end(row, data.eos_id)) for row in generated]
            references = [sample.reference_answers for sample in data.benchmarks[benchmark.name][:n]]
            score = get_scorer(benchmark.metric).aggregate(predictions, references)
        results[benchmark.name] = BenchmarkScore(
            exact_match=100.0 * hits / n, likelihood=100.0 * likelihood / n if needs_likelihood else None, samples=n,
            metric=benchmark.metric, score=score,
        )
    model.train(was_training)
    return EvaluationResult(split=splits.pop(), benchmarks=results)


def _generate(model, backend: ModelBackend, split: EncodedSplit, indices: list[int], pad: int, eos: int,
              max_new_tokens: int) -> list[list[int]]:
    """Greedy answers (token ids) of the samples at ``indices``; exact match compares them with the
    reference ids, which end with the end of the turn."""
    batch = on_device(prompt_batch(split, indices, pad), _device(model))
    return backend.generate(model, batch, max_new_tokens=max_new_tokens, eos_id=eos, pad_id=pad).tolist()


def until_end(row: list[int], eos: int) -> list[int]:
    """A generated row up to (not including) its end of turn: the answer the text scorers read."""
    return row[: row.index(eos)] if eos in row else row


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
