"""Several processes writing trials at once lose nothing and duplicate nothing."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable

import pytest

from dmo.mixture import Mixture
from storage import SearchRecord, Store

WORKERS = 4
TRIALS_PER_WORKER = 25
SHARED = 10  # every worker writes trials 0..9 at once (a resumed driver racing a live one)
OWN = TRIALS_PER_WORKER - SHARED


def _mixture(number: int) -> Mixture:
    a = (number % 10) / 10
    return Mixture(("a", "b", "c"), (a, round(1 - a, 10), 0.0))


def _write_trials(url: str, search_id: int, worker: int, barrier: object) -> None:
    store = Store.open(url, upgrade=False, retry_s=30.0)
    barrier.wait()  # type: ignore[attr-defined]  # start writing together
    own = list(range(SHARED + worker * OWN, SHARED + (worker + 1) * OWN))
    numbers = list(range(SHARED)) + own + own[:2]  # and a plain rewrite of two of our own
    for number in numbers:
        store.record_trial(
            search_id=search_id, number=number, mixture=_mixture(number),
            merge_method="task_arithmetic",
            params={"u0": number / 100}, scores={"a": float(number)}, objective=[float(number)],
            state="complete", duration_s=0.01,
        )
    store.dispose()


@pytest.mark.slow
def test_parallel_writers_lose_and_duplicate_nothing(
    store: Store, make_search: Callable[..., SearchRecord]
) -> None:
    search = make_search()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    processes = [
        context.Process(target=_write_trials, args=(store.url, search.id, w, barrier))
        for w in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0] * WORKERS

    trials = store.trials(search.id, state=None)
    expected = list(range(SHARED + WORKERS * OWN))
    assert [t.number for t in trials] == expected  # every number once, none lost
    assert all(t.mixture == _mixture(t.number) and t.value == float(t.number) for t in trials)
    assert store.trial_counts(search.id) == {"complete": len(expected)}
