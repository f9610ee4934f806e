from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture()
def tiny_yaml(tmp_path) -> Path:
    """configs/tiny.yaml with its workdir under tmp_path (a file, as users pass it)."""
    data = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    data["project"]["workdir"] = str(tmp_path / "workdir")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture()
def cli_env(tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["RAY_AUTH_MODE"] = "disabled"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.pop("DMO_STORE_URL", None)
    return env
