"""The store commands answer without the heavy libraries (issue 20, item 5).

Their start-up time is measured in bench/startup.py; what can fail here is the property that
makes it small: `dmo searches`, `dmo best` and `dmo --help` import no torch, Ray, transformers,
Optuna or mergekit, even when they read a store holding a finished search.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "ray", "optuna", "mergekit", "peft", "safetensors", "numpy")


def _run_in_fresh_process(args: list[str]) -> tuple[int, list[str]]:
    code = (
        "import json, sys\n"
        "from dmo.cli.main import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit as done:\n    code = done.code\n"
        f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("command", [["searches"], ["best"], ["best", "--json"], ["searches", "--json"]])
def test_store_commands_read_a_finished_search_without_importing_heavy_libraries(
    command: list[str], finished_search, tiny_config
) -> None:
    code, heavy = _run_in_fresh_process([*command, "--store-url", tiny_config.project.resolved_store_url()])
    assert code == 0
    assert heavy == []


def test_help_imports_no_heavy_library() -> None:
    code, heavy = _run_in_fresh_process(["--help"])
    assert code == 0
    assert heavy == []


def test_the_console_script_is_the_entry_that_skips_the_exit_collection() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["dmo"] == "dmo.cli.main:run"
    assert (REPO / "dmo" / "__main__.py").read_text(encoding="utf-8").splitlines()[0] == "from dmo.cli.main import run"
