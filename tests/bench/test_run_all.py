"""`make bench` writes its report: a smoke test of the report writer on the fastest section."""

from __future__ import annotations

import json
import subprocess
import sys


def test_run_all_writes_the_report_and_the_raw_figures(repo_root, tmp_path):
    out = tmp_path / "benchmarks.md"
    subprocess.run([sys.executable, str(repo_root / "bench" / "run_all.py"), "--quick", "--only", "data", "--out", str(out)],
                   cwd=repo_root, check=True, capture_output=True, timeout=120)
    raw = json.loads(out.with_suffix(".json").read_text())
    rows = raw["sections"]["data"]["result"]["domains"]
    from dmo.data import GENERATORS

    assert {row["domain"] for row in rows} == set(GENERATORS)  # every generator is timed
    text = out.read_text()
    assert f"| **all** | {500 * len(GENERATORS)} |" in text and "machine:" in text  # --quick: 500 each
    # Sections not asked for are marked, not silently dropped.
    from run_all import SECTIONS

    assert text.count("_not run_") == len(SECTIONS) - 1
