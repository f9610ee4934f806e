"""What every benchmark script shares: best-of-n timing and JSON-or-table output.

Scripts run as `python bench/NAME.py`, which puts bench/ on sys.path, so they
import this as `harness`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any


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


def finished_validations(config_path: str, search_id: int | None) -> tuple[Any, list]:
    """The search (``search_id``, default the newest in the config's store) and its finished validations,
    read once; the fidelity benches judge from these alone. A store with no search is a clear exit."""
    from dmo.config import load_config  # here, not at import: the timing benches need none of dmo
    from storage import Store

    store = Store.open_existing(load_config(config_path).project.resolved_store_url())
    try:
        if search_id is None:
            searches = store.list_searches()
            if not searches:
                raise SystemExit(f"the store of {config_path} holds no search: run `make demo` first")
            search_id = searches[-1].id
        search = store.get_search(search_id)
        return search, list(store.validations(search.id, finished_only=True))  # one metric and benchmark set
    finally:
        store.dispose()
