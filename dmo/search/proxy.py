"""Proxy evaluation: the inner loop of every search, without Ray.

A `ProxyEvaluator` loads the task-vector bank, the data and one model once;
each call writes θ(w) into that same model in memory (one pass over the
bank) and scores it on dev benchmarks. Nothing touches the disk per trial.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from dmo.data.prepared import PreparedData, prepare_data
from dmo.errors import SearchError
from dmo.evaluation import EvaluationResult, evaluate
from dmo.evaluation.benchmarks import search_benchmarks, search_score
from dmo.evaluation.scoring import sample_counts
from dmo.merging.banks import open_bank
from dmo.merging.methods import get_method
from dmo.mixture import merge_coefficients
from dmo.models.backends import backend_for
from dmo.search.pool import ProxyRequest, ProxyResult, ProxySource

SEARCH_SPLIT = "dev"  # searches never see test splits


class ProxyEvaluator:
    def __init__(self, source: ProxySource, *, data: PreparedData | None = None, device: torch.device | None = None):
        config = source.config
        if len(source.expert_checkpoints) != len(config.domains):
            raise SearchError(
                f"{len(source.expert_checkpoints)} experts for {len(config.domains)} domains",
                hint="train one expert per configured domain first",
            )
        self.config = config
        self.source = source
        self.backend = backend_for(config)
        self.data = data or prepare_data(config)
        merge = config.search.merge
        self.method = get_method(merge.method, merge.params)
        self.model = self.backend.proxy_model(config, source.base_checkpoint).float().eval()
        if device is not None and device.type != "cpu":
            self.model = self.model.to(device)  # first: a factored bank refers to the model's own base tensors
        # Full checkpoints become the dense bank; peft adapters are kept as their factors, unless the
        # method sparsifies dense task vectors (ties, dare_*) or merge.bank (auto: the cost of the
        # factors' hooks) says otherwise: then they are folded into the dense bank.
        self.bank = open_bank(
            source.base_checkpoint,
            source.expert_checkpoints,
            backend=self.backend,
            base_state=self.model.state_dict(),
            exclude=merge.exclude,
            storage_dtype=torch.bfloat16 if merge.dtype == "bfloat16" else torch.float32,
            fused=self.method.fused,
            layout=merge.bank,
        )
        if device is not None and device.type != "cpu":
            # Built on the host from the checkpoints, then moved (what is on the device already stays put).
            self.bank = self.bank.to(device)
        self.bank.bind(self.model)
        self.benchmarks = search_benchmarks(config)
        if config.benchmarks and not all(b.name in self.data.benchmarks for b in self.benchmarks):
            from dmo.data.domains import load_benchmarks

            self.data.add_benchmarks(load_benchmarks(config, ("search",), self.data.domains))  # never a report one

    def run(self, request: ProxyRequest) -> ProxyResult:
        """What a pool asks of an evaluator: a proxy, a stored checkpoint's per-sample credit, or the
        benchmark sizes."""
        if request.sizes:
            return ProxyResult(scores={}, samples=0, merge_seconds=0.0, eval_seconds=0.0, routing={},
                               sizes=sample_counts(self.data, self.benchmarks, limit=self.config.evaluation.dev_limit))
        if request.checkpoint is not None:
            return self.credit_of(request.checkpoint)
        return self.evaluate(request.weights, limit=request.limit, subsets=request.subsets)

    def evaluate(self, weights: Sequence[float], *, limit: int | None = None,
                 subsets: Mapping[str, Sequence[int]] | None = None) -> ProxyResult:
        """θ(w) written into the model, then scored: on ``subsets`` (a search's anchor subset), else on
        each benchmark's first ``limit`` samples, else on ``evaluation.dev_limit`` of them (all by default)."""
        started = time.perf_counter()
        # The data mixture becomes merge coefficients here, and only here (and in a mergekit recipe of it).
        self.bank.load_into(self.model, list(merge_coefficients(weights, self.config.search.merge.weight_power)),
                            self.method)
        merged = time.perf_counter()
        result = self._score(self.model, limit=limit, subsets=subsets, per_sample=False)
        done = time.perf_counter()
        return ProxyResult(
            scores=_scores_by_metric(result),
            samples=sum(score.samples for score in result.benchmarks.values()),
            merge_seconds=merged - started,
            eval_seconds=done - merged,
            routing=self._routing_summary(),
        )

    def credit_of(self, checkpoint: Path) -> ProxyResult:
        """The search's base or one of its experts on the full search benchmarks, with each sample's
        credit by the search's score: what a search chooses its anchor subset from.

        The model is written from the bank (task arithmetic at λ = 1: zero weights give the base, a
        one-hot weight the expert), so an expert imported as a bare peft adapter, which has no full
        checkpoint to load, is scored like any other, and no second model is held in memory."""
        started = time.perf_counter()
        experts = list(self.source.expert_checkpoints)
        if checkpoint == self.source.base_checkpoint:
            weights = [0.0] * len(experts)
        elif checkpoint in experts:
            weights = [1.0 if path == checkpoint else 0.0 for path in experts]
        else:
            raise SearchError(f"{checkpoint} is neither this search's base nor one of its experts")
        self.bank.load_into(self.model, weights, "task_arithmetic")
        result = self._score(self.model, limit=None, subsets=None, per_sample=True)
        metric = search_score(self.config)
        return ProxyResult(
            scores=_scores_by_metric(result),
            samples=sum(score.samples for score in result.benchmarks.values()),
            merge_seconds=0.0,
            eval_seconds=time.perf_counter() - started,
            routing={},
            credit={name: score.credit[metric] for name, score in result.benchmarks.items()
                    if score.credit is not None and metric in score.credit},
        )

    def _score(self, model: torch.nn.Module, *, limit: int | None, subsets: Mapping[str, Sequence[int]] | None,
               per_sample: bool) -> EvaluationResult:
        evaluation = self.config.evaluation
        return evaluate(
            model,
            self.data,
            self.benchmarks,
            backend=self.backend,
            max_new_tokens=evaluation.max_new_tokens,
            batch_size=evaluation.batch_size,
            limit=limit if limit is not None else evaluation.dev_limit,
            subsets=subsets,
            per_sample=per_sample,
            # the likelihood pass is a second forward per batch: only where the objective reads it
            likelihood=search_score(self.config) == "likelihood",
        )

    def _routing_summary(self) -> dict[str, float]:
        """Mean TanhNorm gate of each routed layer on one dev batch: top-k is discontinuous
        in the router, so a proxy whose gates drift far from its experts' is worth a look."""
        from dmo.data.encoding import training_batch

        split = self.data.encoded(self.data.names[0], SEARCH_SPLIT)
        batch = training_batch(split, list(range(min(16, len(split)))), self.data.pad_id)
        batch.pop("labels")
        return self.backend.mean_gates(self.model, batch)


def _scores_by_metric(result: EvaluationResult) -> dict[str, dict[str, float]]:
    # "benchmark" only where benchmarks are declared; likelihood only where it was computed
    return {metric: scores for metric in ("benchmark", "exact_match", "likelihood") if (scores := result.scores(metric))}
