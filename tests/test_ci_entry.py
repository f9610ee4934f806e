"""CI's entry point is a shell script no other test runs: a syntax error in it fails CI before a
single test does, so parse it here."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_run_parses_and_ends_in_make_test() -> None:
    script = ROOT / ".ci" / "run"
    parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert parsed.returncode == 0, parsed.stderr
    commands = [line.strip() for line in script.read_text().splitlines()]
    assert "make test" in commands[-2:]  # the last command (a trailing blank line allowed)
    assert "set -euo pipefail" in commands
