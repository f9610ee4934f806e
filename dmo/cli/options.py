"""Options shared by several commands, so their names and help stay the same."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_CONFIG = Path("configs/demo.yaml")

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Project YAML (see configs/demo.yaml).")
]
StoreUrlOption = Annotated[
    str | None,
    typer.Option(
        "--store-url",
        "--url",
        help="SQLAlchemy URL of the store; default $DMO_STORE_URL, else the config's SQLite.",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout for scripts.")]


def print_json(payload: Any) -> None:
    """Strict JSON on stdout: NaN and infinities (an undefined correlation) become null."""
    json.dump(_finite(payload), sys.stdout, indent=2, default=str, allow_nan=False)
    sys.stdout.write("\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
