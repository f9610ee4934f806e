"""The committed benchmark report renders from its raw figures with today's report code.

docs/benchmarks.json holds what the last full `make bench` measured; each section's
`markdown()` must still read it, so a change to a benchmark's output cannot silently
break the report that `make bench` writes only after a 30-minute run.
"""

from __future__ import annotations

import json
import re

import pytest


@pytest.fixture(scope="module")
def committed(repo_root):
    path = repo_root / "docs" / "benchmarks.json"
    if not path.exists():
        pytest.fail("docs/benchmarks.json is missing: run `make bench` and commit its report")
    return json.loads(path.read_text())


def test_every_section_was_measured_in_full_mode(committed):
    from run_all import SECTIONS

    assert not committed["quick"], "the committed report is a --quick smoke run"
    for section in SECTIONS:
        entry = committed["sections"].get(section.key)
        assert entry is not None, f"section {section.key} was never run"
        assert "error" not in entry, f"section {section.key} failed: {entry['error']}"
        assert not entry.get("quick", False), f"section {section.key} ran with quick settings"


def test_each_section_renders_its_figures(committed):
    from run_all import SECTIONS, load_module

    for section in SECTIONS:
        text = load_module(section.script).markdown(committed["sections"][section.key]["result"])
        assert "|" in text and not re.search(r"\bnan\b", text, re.IGNORECASE), (section.key, text)
