"""lmms-eval as a benchmark scorer: one of its tasks run on a model in memory (``pip install 'dmo[lmms]'``).

A proxy is never written to disk to be scored. The model, its backend and its encoder are wrapped
as an lmms-eval model (:func:`dmo.evaluation.lmms_model.in_memory_model`) and lmms-eval's
``simple_evaluate`` runs the task on it: lmms-eval reads the task's documents, builds its prompts
and computes its metric; dmo encodes each prompt the way it encodes any sample (the backend's
tokenizer, processor and chat template) and answers it by the greedy generation its own scorers
read. The task's data must be local: the Hugging Face hubs are set offline for the run.

lmms-eval is optional and heavy (4 s to import, and its dependencies); nothing here imports it
until a benchmark asks for it.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from dmo.config.schema import DmoConfig, LmmsEvalTask
from dmo.data.prepared import SampleEncoder
from dmo.errors import ConfigError
from dmo.models.backends.base import ModelBackend

INSTALL_HINT = ("install the extra in a virtualenv without torchvision or with the torchvision built for your "
                "torch: pip install 'dmo[lmms]' (docs/metrics.md, 'lmms-eval')")
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def score_task(model: nn.Module, backend: ModelBackend, encoder: SampleEncoder, task: LmmsEvalTask, *,
               max_new_tokens: int, batch_size: int, limit: int | None, where: str) -> tuple[float, int]:
    """(points 0-100, documents scored) of ``model`` on the lmms-eval task."""
    simple_evaluate, task_manager = _import_harness(where)
    from dmo.evaluation.lmms_model import in_memory_model

    manager = _task_manager_with(task_manager, task, where)
    limits = [n for n in (limit, task.limit) if n is not None]
    lmm = in_memory_model(model, backend, encoder, max_new_tokens=max_new_tokens, batch_size=batch_size)
    results = simple_evaluate(
        model=lmm, tasks=[task.task], task_manager=manager, limit=min(limits) if limits else None,
        log_samples=False, bootstrap_iters=0, verbosity="ERROR",
    )
    return _points(results, task, where), int(results["n-samples"][task.task]["effective"])


def check_tasks(config: DmoConfig) -> None:
    """Refuse, before any training, search benchmarks whose lmms-eval cannot load or whose task is not
    there; a config without lmms-eval benchmarks costs nothing."""
    for benchmark in config.benchmarks:
        if benchmark.lmms_eval is not None and benchmark.role == "search":
            _, task_manager = _import_harness(f"benchmark {benchmark.name}")
            _task_manager_with(task_manager, benchmark.lmms_eval, f"benchmark {benchmark.name}")


def _task_manager_with(task_manager: Any, task: LmmsEvalTask, where: str) -> Any:
    manager = task_manager(include_path=str(task.tasks_dir), include_defaults=False, verbosity="ERROR")
    if task.task not in manager.all_tasks:
        raise ConfigError(f"no lmms-eval task {task.task!r} in {task.tasks_dir}", where=where,
                          hint=f"tasks found there: {', '.join(sorted(manager.all_tasks)) or 'none'}")
    return manager


def _points(results: dict[str, Any], task: LmmsEvalTask, where: str) -> float:
    metrics = results["results"][task.task]
    key = task.score if task.score in metrics else f"{task.score},none"  # lmms-eval keys a metric by its filter
    if key not in metrics or isinstance(metrics[key], str):
        reported = sorted(k.split(",")[0] for k, v in metrics.items()
                          if k != "alias" and "_stderr" not in k and not isinstance(v, str))
        raise ConfigError(f"lmms-eval task {task.task!r} reports no score {task.score!r}", where=f"{where}.score",
                          hint=f"it reports: {', '.join(reported)}")
    return float(metrics[key]) * task.points_per_unit


def _import_harness(where: str) -> tuple[Any, Any]:
    """lmms-eval's ``simple_evaluate`` and ``TaskManager``, with the hubs offline; a clear error where it
    cannot load."""
    os.environ.update(OFFLINE)  # read by huggingface_hub and datasets when they are first imported
    try:
        from lmms_eval import evaluator
        from lmms_eval.tasks import TaskManager
    except ImportError as error:
        raise ConfigError(f"lmms-eval is not importable: {error}", where=where, hint=INSTALL_HINT) from None
    except RuntimeError as error:  # e.g. PyPI's torchvision beside a CPU torch: 'operator torchvision::nms ...'
        raise ConfigError(f"lmms-eval failed to import: {error}", where=where, hint=INSTALL_HINT) from None
    import datasets

    datasets.config.HF_HUB_OFFLINE = True  # in case datasets was imported before the environment said so
    return evaluator.simple_evaluate, TaskManager
