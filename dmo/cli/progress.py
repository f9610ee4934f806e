"""Progress bars for long work, drawn on stderr so ``--json`` output on stdout stays clean.

The library reports progress through callbacks and draws nothing; each
context manager here yields the callback a command hands to it (or None
when the command prints JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dmo.cli.common import err_console


@contextmanager
def model_bars(enabled: bool = True) -> Iterator[Callable[[str, int, int], None] | None]:
    """One bar per model in training: ``on_step(name, step, total)``."""
    if not enabled:
        yield None
        return
    bars = Progress(TextColumn("{task.description:>18}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                    TimeElapsedColumn(), console=err_console)
    tasks: dict[str, Any] = {}

    def on_step(name: str, step: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = bars.add_task(name, total=total)
        bars.update(tasks[name], completed=step, total=total)

    with bars:
        yield on_step


@contextmanager
def loop_bar(name: str, enabled: bool = True) -> Iterator[Callable[[int, int, float], None] | None]:
    """The bar of one training run in this process: ``on_step(step, total, loss)``."""
    if not enabled:
        yield None
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TimeRemainingColumn(),
                   console=err_console)
    task = bar.add_task(f"train {name}", total=None, loss=float("nan"))

    def on_step(step: int, total: int, loss: float) -> None:
        bar.update(task, completed=step, total=total, loss=loss)

    with bar:
        yield on_step


@contextmanager
def search_bar(search_id: int, enabled: bool = True) -> Iterator[Callable[[Any], None] | None]:
    """The bar of a running search: ``on_progress(SearchProgress)``."""
    if not enabled:
        yield None
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} trials"),
                   TextColumn("best {task.fields[best]}"), TimeElapsedColumn(), console=err_console)
    task = bar.add_task(f"search {search_id}", total=None, best="-")

    def on_progress(progress: Any) -> None:
        best = "-" if progress.best is None else f"{progress.best:.2f}"
        bar.update(task, completed=progress.done, total=progress.target, best=best)

    with bar:
        yield on_progress
