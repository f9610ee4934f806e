"""Score a model on benchmarks: pure computation over encoded splits, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

import torch

from dmo.data.encoding import IGNORE, EncodedSplit, answer_batch, on_device, prompt_batch, training_batch
from dmo.data.prepared import PreparedData
from dmo.evaluation.benchmarks import Benchmark, check_metric
from dmo.evaluation.scorers import get_scorer
from dmo.models.backends.base import ModelBackend

T = TypeVar("T")


@dataclass(frozen=True)
class BenchmarkScore:
    exact_match: float | None  # points, 0-100; None for an lmms-eval task, which dmo does not decode
    likelihood: float | None  # points, 0-100; None where the benchmark's metric does not need the extra pass
    samples: int
    metric: str | None = None  # a declared benchmark's metric
    score: float | None = None  # points, 0-100, by that metric
    # Each scored sample's credit in [0, 1] per score ("exact_match", "likelihood", "benchmark"), in the
    # order scored; only when asked for (anchor selection), and never stored with a trial.
    credit: dict[str, tuple[float, ...]] | None = None


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
            "benchmarks": {name: {k: v for k, v in asdict(score).items() if k != "credit"}
                           for name, score in self.benchmarks.items()},
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
    subsets: Mapping[str, Sequence[int]] | None = None,
    per_sample: bool = False,
    likelihood: bool = True,
) -> EvaluationResult:
    """Score ``model`` on ``benchmarks``: each one's first ``limit`` samples, or the samples ``subsets``
    names for it (an anchor subset: no other sample of that benchmark is encoded into a batch). With
    ``per_sample``, each score also keeps its samples' credit (for choosing anchors). A benchmark
    without a declared metric is scored by exact match and, unless ``likelihood`` is False (a search
    whose objective reads exact match), by answer likelihood, a second forward pass per batch."""
    was_training = model.training
    model.eval()
    splits = {b.split for b in benchmarks}
    if len(splits) != 1:
        raise ValueError(f"benchmarks of one evaluation share a split, got {sorted(splits)}")
    results = {}
    for benchmark in benchmarks:
        if benchmark.lmms_eval is not None:
            # The optional harness: imported only when a benchmark asks for it. It reads its own documents,
            # so an anchor subset does not apply: the task is scored whole (or its first `limit`).
            from dmo.evaluation.lmms import score_task

            score, n = score_task(model, backend, data.encoder, benchmark.lmms_eval, max_new_tokens=max_new_tokens,
                                  batch_size=batch_size, limit=limit, where=f"benchmark {benchmark.name}")
            results[benchmark.name] = BenchmarkScore(exact_match=None, likelihood=None, samples=n,
                                                     metric=benchmark.metric, score=score)
            continue
        split = _encoded(data, benchmark)
        chosen = _chosen(benchmark.name, len(split), limit, subsets)
        results[benchmark.name] = _score(model, backend, data, benchmark, split, chosen, max_new_tokens, batch_size,
                                         per_sample, likelihood)
    model.train(was_training)
    return EvaluationResult(split=splits.pop(), benchmarks=results)


def sample_counts(data: PreparedData, benchmarks: Sequence[Benchmark], *, limit: int | None = None) -> dict[str, int]:
    """How many samples :func:`evaluate` scores of each benchmark it scores sample by sample (every one
    but an lmms-eval task) at ``limit``, without scoring: what a random anchor subset is drawn from."""
    sizes = {b.name: len(_encoded(data, b)) for b in benchmarks if b.lmms_eval is None}
    return {name: n if limit is None else min(limit, n) for name, n in sizes.items()}


def _encoded(data: PreparedData, benchmark: Benchmark) -> EncodedSplit:
    if benchmark.metric is None:
        return data.encoded(benchmark.domain, benchmark.split)
    return data.encoded_benchmark(benchmark.name)


def _chosen(name: str, size: int, limit: int | None, subsets: Mapping[str, Sequence[int]] | None) -> list[int]:
    if subsets is not None and name in subsets:
        chosen = list(subsets[name])
        if not chosen or min(chosen) < 0 or max(chosen) >= size:
            raise ValueError(f"benchmark {name}: subset indices must lie in 0..{size - 1}")
        return chosen
    return list(range(size if limit is None else min(limit, size)))


def _score(model, backend: ModelBackend, data: PreparedData, benchmark: Benchmark, split: EncodedSplit,
           chosen: list[int], max_new_tokens: int, batch_size: int, per_sample: bool,
           likelihood: bool) -> BenchmarkScore:
    hits: list[float] = []
    likelihoods: list[float] = []
    generated: list[list[int]] = []
    needs_likelihood = benchmark.metric == "likelihood" or (benchmark.metric is None and likelihood)
    for start in range(0, len(chosen), batch_size):
        indices = chosen[start : start + batch_size]
        if needs_likelihood:
            pairs = _generate_scored(model, backend, split, indices, data.pad_id, data.eos_id, max_new_tokens)
            rows = [row for row, _ in pairs]
            likelihoods += [value for _, value in pairs]
        else:
            rows = _generate(model, backend, split, indices, data.pad_id, data.eos_id, max_new_tokens)
        hits += [float(row[: len(split.answers[i])] == split.answers[i]) for row, i in zip(rows, indices)]
        generated += rows
    n = len(chosen)
    credit: dict[str, tuple[float, ...]] = {"exact_match": tuple(hits)}
    if needs_likelihood:
        credit["likelihood"] = tuple(likelihoods)
    score = None
    if benchmark.metric == "likelihood":
        score = 100.0 * sum(likelihoods) / n
        credit["benchmark"] = credit["likelihood"]
    elif benchmark.metric is not None:
        scorer = get_scorer(benchmark.metric)
        predictions = [data.encoder.decode(until_end(row, data.eos_id)) for row in generated]
        samples = data.benchmarks[benchmark.name]
        references = [samples[i].reference_answers for i in chosen]
        score = scorer.aggregate(predictions, references)
        if per_sample:  # a set-level metric (POPE's F1) credits a sample by whether it was read right
            credit["benchmark"] = tuple(scorer.sample(p, r) for p, r in zip(predictions, references))
    return BenchmarkScore(
        exact_match=100.0 * sum(hits) / n, likelihood=100.0 * sum(likelihoods) / n if needs_likelihood else None,
        samples=n, metric=benchmark.metric, score=score, credit=credit if per_sample else None,
    )


def _generate(model, backend: ModelBackend, split: EncodedSplit, indices: list[int], pad: int, eos: int,
              max_new_tokens: int) -> list[list[int]]:
    """Greedy answers (token ids) of the samples at ``indices``; exact match compares them with the
    reference ids, which end with the end of the turn."""
    def run(group: list[int]) -> list[list[int]]:
        batch = on_device(prompt_batch(split, group, pad), _device(model))
        return backend.generate(model, batch, max_new_tokens=max_new_tokens, eos_id=eos, pad_id=pad).tolist()

    return _per_group(split, indices, run)


def _generate_scored(model, backend: ModelBackend, split: EncodedSplit, indices: list[int], pad: int, eos: int,
                     max_new_tokens: int) -> list[tuple[list[int], float]]:
    """Greedy answers and answer likelihoods: from one prefill where the backend can, else the answers
    and then a teacher-forced forward for the likelihoods."""
    def run(group: list[int]) -> list[tuple[list[int], float]]:
        batch = on_device(prompt_batch(split, group, pad), _device(model))
        answers, mask = answer_batch(split, group, pad)
        device = _device(model)
        scored = backend.generate_scored(model, batch, answers.to(device), mask.to(device),
                                         max_new_tokens=max_new_tokens, eos_id=eos, pad_id=pad)
        if scored is None:
            rows = backend.generate(model, batch, max_new_tokens=max_new_tokens, eos_id=eos, pad_id=pad).tolist()
            return list(zip(rows, _group_likelihoods(model, split, group, pad)))
        tokens, likelihood = scored
        return list(zip(tokens.tolist(), likelihood.tolist()))

    return _per_group(split, indices, run)


def _per_group(split: EncodedSplit, indices: list[int], run: Callable[[list[int]], list[T]]) -> list[T]:
    """``run`` over each run of samples with one count of vision tokens (images and videos of one batch),
    the results back in the order of ``indices``."""
    by_index: dict[int, T] = {}
    for group in split.images.groups(indices):
        by_index.update(zip(group, run(group)))
    return [by_index[i] for i in indices]


def until_end(row: list[int], eos: int) -> list[int]:
    """A generated row up to (not including) its end of turn: the answer the text scorers read."""
    return row[: row.index(eos)] if eos in row else row


def _group_likelihoods(model, split: EncodedSplit, indices: list[int], pad: int) -> list[float]:
    """Each sample's exp(−mean NLL of its answer tokens), by a teacher-forced forward of prompt + answer
    (samples of one vision-token count)."""
    batch = on_device(training_batch(split, indices, pad), _device(model))
    labels = batch.pop("labels")[:, 1:]
    logits = model(**batch).logits[:, :-1]  # (B, T-1, V): predicts token t+1
    mask = labels != IGNORE
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    picked = logprobs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    mean_nll = -(picked * mask).sum(1) / mask.sum(1)
    return torch.exp(-mean_nll).tolist()


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
