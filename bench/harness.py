"""What every benchmark script shares: best-of-n timing and JSON-or-table output.

Scripts run as `python bench/NAME.py`, which puts bench/ on sys.path, so they
import this as `harness`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable


def best_seconds(run: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """The fastest of `repeats` calls after `warmup` calls: the least noisy figure on a shared box."""
    for _ in range(warmup):
        run()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def emit(report: dict, as_json: bool, markdown: Callable[[dict], str]) -> int:
    """One JSON object on stdout (what bench/run_all.py reads), or the script's table."""
    if as_json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(markdown(report))
    return 0
