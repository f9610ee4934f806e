"""Options shared by several commands, so their names and help stay the same, and JSON output."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_CONFIG = Path("configs/demo.yaml")

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config", "-c",
        help="Project YAML (default configs/demo.yaml); its project.store_url is the store unless "
        "--store-url or $DMO_STORE_URL says otherwise.",
    ),
]
StoreUrlOption = Annotated[
    str | None,
    typer.Option(
        "--store-url",
        "--url",
        help="SQLAlchemy URL of the store; wins over $DMO_STORE_URL, which wins over the config's store.",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout for scripts.")]
RetryOption = Annotated[
    float, typer.Option("--retry-s", min=0.0, help="Seconds to retry an unreachable or locked store.")
]
AddressOption = Annotated[str | None, typer.Option("--address", help="Ray cluster address; default a local Ray.")]


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
