"""bench/ scripts import each other by bare name (`harness`, `decision_cost`), as `python bench/X.py` allows."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
