"""End to end: `dmo dashboard` on a seeded store, every page loaded in headless Chromium.

Needs Debian's chromium at /usr/bin/chromium (Playwright drives it; no browser is
downloaded). Without it the test skips, unless DMO_REQUIRE_CHROMIUM=1 (CI after
installing it), where it fails. DMO_UPDATE_SCREENSHOTS=1 writes the search page's
screenshot to docs/dashboard-search.png.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from dashboard_process import REPO, free_port_pair, running_dashboard

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = REPO / "docs" / "dashboard-search.png"
WIDTH = 1400


def _playwright_or_skip():
    """Playwright's sync API, or a skip (a failure under DMO_REQUIRE_CHROMIUM=1) saying why not."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (install Debian's chromium: apt-get install chromium)"
    else:
        try:
            import playwright.sync_api
        except ImportError:
            missing = "the playwright package is missing (pip install -e '.[test]')"
    if missing is None:
        return playwright.sync_api
    if os.environ.get("DMO_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"{missing}, and DMO_REQUIRE_CHROMIUM=1")
    pytest.skip(missing)


def _open(page, expect, url: str, title: str, charts: int) -> None:
    """Load ``url`` and wait until its title and ``charts`` drawn plotly figures are on screen."""
    page.set_viewport_size({"width": WIDTH, "height": 900})
    page.goto(url)
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    expect(page.locator(".js-plotly-plot .main-svg").first).to_be_attached() if charts else None
    expect(page.locator(".js-plotly-plot")).to_have_count(charts)
    # The script has finished once Streamlit's status widget is gone.
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def _full_page_screenshot(page, path: Path) -> None:
    # Streamlit scrolls inside its main block, so grow the window to the content's height.
    height = page.evaluate(
        "Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
        "[data-testid=stMainBlockContainer]')].map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": WIDTH, "height": int(height) + 40})
    page.wait_for_timeout(1000)  # plotly re-lays out to the new size
    page.screenshot(path=str(path))


def test_every_page_renders_in_chromium(seeded, tmp_path):
    api = _playwright_or_skip()
    expect = api.expect
    expect.set_options(timeout=20_000)
    port = free_port_pair()
    with running_dashboard(seeded.url, port) as dashboard, api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page()

            _open(page, expect, dashboard.url, "Searches", charts=0)
            expect(page.locator('[data-testid="stDataFrame"]')).to_have_count(1)
            expect(page.get_by_text(f"Search {seeded.live} is still running")).to_be_visible()

            _open(page, expect, f"{dashboard.url}/search?search={seeded.three}", "Search", charts=3)
            expect(page.locator(".js-plotly-plot g.ternary")).to_have_count(1)
            expect(page.get_by_text("2 trial(s) failed (trial 4, 9)")).to_be_visible()
            expect(page.get_by_text(f"{seeded.three_best:.2f}", exact=True)).to_be_visible()
            expect(page.get_by_role("heading", name="Proxy vs real")).to_be_visible()
            shot = tmp_path / "dashboard-search.png"
            _full_page_screenshot(page, shot)
            assert shot.stat().st_size > 20_000

            _open(
                page, expect, f"{dashboard.url}/search?search={seeded.pareto}", "Search", charts=3
            )
            expect(page.get_by_role("heading", name="Pareto front")).to_be_visible()
            expect(page.locator(".js-plotly-plot .parcoords")).to_have_count(1)

            _open(page, expect, f"{dashboard.url}/experts", "Experts", charts=3)
            expect(page.get_by_text("Training loss")).to_be_visible()
            expect(page.get_by_text(f"mixture #{seeded.failed_model_id} failed")).to_be_visible()
        finally:
            browser.close()
    if os.environ.get("DMO_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, SCREENSHOT)
