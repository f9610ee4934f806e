"""A pool of proxy evaluators as Ray actors, each holding the task-vector bank."""

from __future__ import annotations

from collections import deque

import ray
from ray.exceptions import RayError

from dmo.runtime import compute_device, quiet_transformers, set_torch_threads
from dmo.search.pool import Outcome, ProxyRequest, ProxyResult, ProxySource
from dmo.search.proxy import ProxyEvaluator


# An evaluation is a pure function of the weights, so a trial whose actor died (OOM,
# preemption, kill) is safely run again once Ray has restarted the actor. Without task
# retries, every trial submitted while the actor restarts fails at once, unevaluated.
@ray.remote(num_cpus=1, max_restarts=2, max_task_retries=1)
class ProxyEvaluatorActor:
    """Loads the bank once (and again only if Ray restarts the actor)."""

    def __init__(self, source: ProxySource):
        set_torch_threads(source.threads)
        quiet_transformers()
        device = compute_device(source.config.ray.gpus_per_evaluator, field="ray.gpus_per_evaluator",
                                granted=ray.get_runtime_context().get_assigned_resources())
        self.evaluator = ProxyEvaluator(source, device=device)

    def run(self, request: ProxyRequest) -> ProxyResult:
        return self.evaluator.run(request)


def evaluator_resources(source: ProxySource) -> dict[str, float]:
    """What one evaluator actor asks Ray for: a CPU, and the GPUs (or fraction) the config gives evaluators."""
    return {"num_cpus": 1, "num_gpus": source.config.ray.gpus_per_evaluator}


class RayPool:
    def __init__(self, source: ProxySource, size: int):
        self.size = size
        resources = evaluator_resources(source)
        self._actors = [ProxyEvaluatorActor.options(**resources).remote(source) for _ in range(size)]
        self._idle = deque(self._actors)
        self._queue: deque[tuple[int, ProxyRequest]] = deque()
        self._running: dict[ray.ObjectRef, tuple[int, object]] = {}

    def submit(self, ticket: int, request: ProxyRequest) -> None:
        self._queue.append((ticket, request))
        self._dispatch()

    def _dispatch(self) -> None:
        while self._idle and self._queue:
            actor = self._idle.popleft()
            ticket, request = self._queue.popleft()
            self._running[actor.run.remote(request)] = (ticket, actor)

    def wait(self, timeout: float) -> list[Outcome]:
        if not self._running:
            return []
        ready, _ = ray.wait(list(self._running), num_returns=1, timeout=timeout)
        outcomes: list[Outcome] = []
        for ref in ready:
            ticket, actor = self._running.pop(ref)
            try:
                outcomes.append((ticket, ray.get(ref)))
            except (RayError, Exception) as error:  # a dead actor or a failed evaluation fails one trial
                outcomes.append((ticket, error))
            self._idle.append(actor)
        self._dispatch()
        return outcomes

    def close(self) -> None:
        for actor in self._actors:
            ray.kill(actor)
        self._actors.clear()
