"""A dmo model in memory as an lmms-eval model: the adapter :mod:`dmo.evaluation.lmms` hands to lmms-eval.

lmms-eval is optional: this module imports without it, and its model class is subclassed only
when :func:`in_memory_model` is called, by a benchmark that asks for lmms-eval.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from dmo.data.encoding import on_device, prompt_batch
from dmo.data.prepared import SampleEncoder
from dmo.data.sample import Sample
from dmo.errors import ConfigError, DataError
from dmo.evaluation.scoring import until_end
from dmo.models.backends.base import ModelBackend


def in_memory_model(model: nn.Module, backend: ModelBackend, encoder: SampleEncoder, *, max_new_tokens: int,
                    batch_size: int) -> Any:
    """``model`` as an instance of lmms-eval's model class, ready for ``simple_evaluate``."""
    from lmms_eval.api.model import lmms

    class InMemoryModel(lmms):
        def __init__(self) -> None:
            super().__init__()
            self.answerer = Answerer(model, backend, encoder, max_new_tokens=max_new_tokens, batch_size=batch_size)

        def generate_until(self, requests: Sequence[Any]) -> list[str]:
            return self.answerer.generate_until(requests, self.task_dict)

        def loglikelihood(self, requests: Sequence[Any]) -> list[tuple[float, bool]]:
            raise ConfigError("the task asks for log-likelihoods; dmo scores lmms-eval tasks whose output_type is "
                              "generate_until", where="lmms-eval task")

        def generate_until_multi_round(self, requests: Sequence[Any]) -> list[str]:
            raise ConfigError("the task is multi-round; dmo scores single-turn generate_until tasks",
                              where="lmms-eval task")

    return InMemoryModel()


class Answerer:
    """Answers lmms-eval's ``generate_until`` requests with dmo's encoder and greedy generation.

    Each request is a task document's prompt and its one image; a batch of them is encoded like
    any dmo sample (the answer left empty) and generated in one left-padded batch. lmms-eval's
    stop strings (``until``) cut the decoded answer; its ``max_new_tokens`` is honoured.
    """

    def __init__(self, model: nn.Module, backend: ModelBackend, encoder: SampleEncoder, *,
                 max_new_tokens: int, batch_size: int):
        self._model, self._backend, self._encoder = model, backend, encoder
        self._max_new_tokens, self._batch_size = max_new_tokens, batch_size
        self._device = next(model.parameters()).device

    def generate_until(self, requests: Sequence[Any], task_dict: dict) -> list[str]:
        answers: list[str] = []
        pending = iter(requests)
        while chunk := list(islice(pending, self._batch_size)):
            kwargs = dict(chunk[0].args[1] or {})
            max_new_tokens = int(kwargs.get("max_new_tokens", self._max_new_tokens))
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            samples = [_sample(request, task_dict) for request in chunk]
            split = self._encoder.encode(samples)
            batch = on_device(prompt_batch(split, range(len(samples)), self._encoder.pad_id), self._device)
            with torch.no_grad():
                rows = self._backend.generate(self._model, batch, max_new_tokens=max_new_tokens,
                                              eos_id=self._encoder.eos_id, pad_id=self._encoder.pad_id).tolist()
            answers += [_cut(self._encoder.decode(until_end(row, self._encoder.eos_id)), until) for row in rows]
        return answers



def _sample(request: Any, task_dict: dict) -> Sample:
    """A request as a dmo sample: the task's prompt text and its one image, the answer left empty."""
    context, _, doc_to_visual, doc_id, task, split = request.args
    visuals = doc_to_visual(task_dict[task][split][doc_id])
    where = f"lmms-eval task {task}, {split} document {doc_id}"
    if len(visuals) != 1 or not isinstance(visuals[0], Image.Image):
        raise DataError(f"has {len(visuals)} visuals; dmo's models read exactly one image per sample", where=where)
    image = np.asarray(visuals[0].convert("RGB"))
    return Sample(uid=f"{task}:{doc_id}", domain=task, image=image, question=context, answer="", source=where)


def _cut(text: str, until: list[str]) -> str:
    """The answer up to the first of lmms-eval's stop strings."""
    for stop in until:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text
