"""The database goes away: a TCP proxy between the Store and PostgreSQL is cut, then restored.

The shared PostgreSQL server is never stopped; only this test's connections to it are
dropped. A short outage costs a retried write; a long one ends in a StoreError that
names the (masked) URL; a transaction cut in its middle leaves no row behind.
"""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest
import sqlalchemy as sa
from reliability_support import TcpProxy
from search_support import project_config, search_row
from sqlalchemy.engine import make_url

from dmo.errors import StoreError
from storage import Store

pytestmark = pytest.mark.postgres

PASSWORD = "s3cret-pw"  # trust auth ignores it; it must never be shown
OUTAGE_S = 3.0


@pytest.fixture()
def proxied(pg_url):
    """(store URL through the proxy with a password, the proxy, a direct admin engine)."""
    real = make_url(pg_url)
    proxy = TcpProxy((real.host or "127.0.0.1", real.port or 5432))
    url = real.set(host="127.0.0.1", port=proxy.port, password=PASSWORD).render_as_string(hide_password=False)
    direct = sa.create_engine(real)
    try:
        yield url, proxy, direct
    finally:
        proxy.close()
        direct.dispose()


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def _experts(store: Store) -> list[int]:
    return [
        store.start_model(kind="expert", config_hash=f"h-{d}", domain=d, base_id=None, training={}, finetune="full",
                          efficiency={}).id
        for d in ("a", "b")
    ]


def _base(store: Store, config_hash: str):
    return store.start_model(kind="base", config_hash=config_hash, domain=None, base_id=None, training={},
                             finetune="full", efficiency={})


def _create_search(store: Store, experts: list[int]):
    return search_row(store, project_config(("a", "b"), project__name="s"), study_name="study-1",
                      expert_ids=tuple(experts), with_study=False)


def test_a_write_during_a_short_outage_is_retried_and_applied_once(proxied, caplog):
    url, proxy, direct = proxied
    caplog.set_level(logging.WARNING, logger="dmo.storage")
    with Store.open(url, retry_s=30.0) as store:
        _base(store, "before")
        proxy.cut()
        restorer = threading.Timer(OUTAGE_S, proxy.restore)
        started = time.monotonic()
        restorer.start()
        record = _base(store, "during")
        waited = time.monotonic() - started
        restorer.join()
        assert record.config_hash == "during"
        assert waited >= OUTAGE_S * 0.8, "the write cannot have succeeded while the proxy was cut"
        assert [m.config_hash for m in store.list_models()] == ["before", "during"]
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) >= 3, "retried, and said so"
    # Exponential backoff with jitter: pause n lies in [d·2ⁿ, d·2ⁿ⁺¹], so the pauses never
    # shrink (until the 2 s cap) and grow several-fold over the outage.
    pauses = [float(m) for m in re.findall(r"retrying in ([0-9.]+)s", " ".join(retries))]
    assert pauses == sorted(pauses) and pauses[-1] >= 4 * pauses[0], pauses
    assert all(PASSWORD not in r.getMessage() for r in caplog.records)
    assert all(f"postgres:***@127.0.0.1:{proxy.port}" in m for m in retries)
    assert _count(direct, "dmo_models") == 2


def test_an_outage_longer_than_the_retry_budget_is_a_clear_error(proxied, caplog):
    url, proxy, direct = proxied
    caplog.set_level(logging.WARNING, logger="dmo.storage")
    budget = 1.5
    with Store.open(url, retry_s=budget) as store:
        experts = _experts(store)
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(StoreError) as raised:
            _create_search(store, experts)
        elapsed = time.monotonic() - started
    assert budget * 0.9 <= elapsed < budget + 15, "retried for the budget, then gave up"
    error = raised.value
    assert error.where == f"postgresql+psycopg://postgres:***@127.0.0.1:{proxy.port}/{make_url(url).database}"
    assert "creating a search failed" in error.message and "pg_isready" in (error.hint or "")
    assert PASSWORD not in error.render() and all(PASSWORD not in r.getMessage() for r in caplog.records)
    assert (_count(direct, "dmo_searches"), _count(direct, "dmo_search_experts")) == (0, 0)


def test_a_transaction_cut_in_its_middle_leaves_no_half_written_rows(proxied):
    url, proxy, direct = proxied
    with Store.open(url, retry_s=1.0) as store:
        experts = _experts(store)
        # The search row is already sent (inside the open transaction) when its expert
        # links go out: the connection dies there, and the proxy stays down.
        proxy.cut_on(b"INSERT INTO dmo_search_experts")
        with pytest.raises(StoreError):
            _create_search(store, experts)
        assert proxy.tripped.is_set(), "the cut happened inside the transaction"
        assert (_count(direct, "dmo_searches"), _count(direct, "dmo_search_experts")) == (0, 0)

        # The same cut with the server back within the budget: the whole transaction is
        # retried, and exactly one search with both expert links results.
        proxy.restore()
        store_retrying = Store.open(url, upgrade=False, retry_s=30.0)
        proxy.cut_on(b"INSERT INTO dmo_search_experts")
        restorer = threading.Thread(target=lambda: proxy.tripped.wait(60) and (time.sleep(1.0), proxy.restore()))
        restorer.start()
        search = _create_search(store_retrying, experts)
        restorer.join()
        store_retrying.dispose()
    assert proxy.tripped.is_set()
    assert list(search.expert_ids) == experts
    assert (_count(direct, "dmo_searches"), _count(direct, "dmo_search_experts")) == (1, 2)
