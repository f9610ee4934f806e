"""Start-up of the store commands: `dmo --help`, `dmo searches` and `dmo best`, beside the libraries they need.

    python bench/startup.py [--repeats 9] [--json]

A tiny search is run once into a temporary workdir (`dmo demo -c configs/tiny.yaml`), then each
command is run `repeats` times as a fresh process and its median wall time reported. Beside them,
in the same run: a bare interpreter and a process that only imports what these commands cannot do
without (Typer with its pydantic adapters, SQLAlchemy's ORM, PyYAML, Rich), which is the floor no
change inside dmo can go under. Target (issue 20): each command ≤ 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import emit

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 0.5
LIBRARIES = "import typer, typer._adapters, sqlalchemy.orm, yaml, rich.console, rich.table"


def _dmo() -> str:
    return shutil.which("dmo", path=str(Path(sys.executable).parent)) or "dmo"


def median_seconds(command: list[str], repeats: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return statistics.median(times)


def measure(repeats: int) -> dict:
    env = {**os.environ, "DMO_STORE_URL": ""}
    with tempfile.TemporaryDirectory(prefix="dmo-startup-") as tmp:
        config = Path(tmp) / "tiny.yaml"
        text = (REPO / "configs" / "tiny.yaml").read_text(encoding="utf-8")
        config.write_text(text.replace("workdir: .dmo/tiny", f"workdir: {tmp}/work"), encoding="utf-8")
        subprocess.run([_dmo(), "demo", "-c", str(config)], stdout=subprocess.DEVNULL, env=env, check=True, cwd=REPO)
        rows = {
            "python -c pass": median_seconds([sys.executable, "-c", "pass"], repeats, env),
            "the libraries only": median_seconds([sys.executable, "-c", LIBRARIES], repeats, env),
            "dmo --help": median_seconds([_dmo(), "--help"], repeats, env),
            "dmo searches": median_seconds([_dmo(), "searches", "-c", str(config)], repeats, env),
            "dmo best": median_seconds([_dmo(), "best", "-c", str(config)], repeats, env),
        }
    commands = ("dmo --help", "dmo searches", "dmo best")
    return {"repeats": repeats, "libraries": LIBRARIES, "seconds": rows,
            "met": {f"{name} <= {TARGET_S} s": rows[name] <= TARGET_S for name in commands}}


def markdown(report: dict) -> str:
    rows, floor = report["seconds"], report["seconds"]["the libraries only"]
    lines = [f"Median of {report['repeats']} fresh processes each, on a store holding the tiny demo's search.", "",
             "| process | wall s | above the libraries' floor |", "|---|---:|---:|"]
    for name, seconds in rows.items():
        above = "" if name in ("python -c pass", "the libraries only") else f"{seconds - floor:+.3f}"
        lines.append(f"| `{name}` | {seconds:.3f} | {above} |")
    lines += ["", (f"The floor is `{report['libraries']}`: what the store commands need before dmo does "
                   "anything, ended the ordinary way. dmo's console script ends without the interpreter's "
                   "last garbage collection (`dmo.cli.main.run`), which is how a command can come in "
                   "under the floor.")]
    lines += [f"- {name}: {'met' if ok else 'not met'}" for name, ok in report["met"].items()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    return emit(measure(3 if args.quick else args.repeats), args.json, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
