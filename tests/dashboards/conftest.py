"""Stores for the dashboard tests: one seeded through the Store API (shared by the session,
read only), one with tables and no rows, and a URL where no store exists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from dashboard_seed import Seeded, seed_store

from storage import Store

PAGES = Path(__file__).resolve().parents[2] / "dashboards" / "pages"


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed_store(f"sqlite:///{tmp_path_factory.mktemp('dash-seeded') / 'dmo.sqlite'}")


@pytest.fixture(scope="session")
def empty_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('dash-empty') / 'dmo.sqlite'}"
    Store.open(url).dispose()  # tables, no rows
    return url


@pytest.fixture
def missing_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'nothing-here.sqlite'}"


@pytest.fixture
def run_page(monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """Run one page script under Streamlit's AppTest against the store at ``url``."""
    from streamlit.testing.v1 import AppTest

    def run(page: str, url: str, **query: str) -> AppTest:
        monkeypatch.setenv("DMO_STORE_URL", url)
        monkeypatch.delenv("DMO_OPTUNA_DASHBOARD_URL", raising=False)
        app = AppTest.from_file(str(PAGES / page), default_timeout=30)
        for key, value in query.items():
            app.query_params[key] = value
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        return app

    return run
