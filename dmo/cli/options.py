"""Options shared by several commands, so their names and help stay the same."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_CONFIG = Path("configs/demo.yaml")

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Project YAML (see configs/demo.yaml).")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout for scripts.")]


def print_json(payload: Any) -> None:
    json.dump(payload, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
