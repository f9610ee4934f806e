"""Run `dmo dashboard` as a child process on free ports, and stop it as Ctrl-C would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dmo.cli.dashboard_cmd import STOP_TIMEOUT_S

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((HOST, port)) == 0


def free_port_pair() -> int:
    """A port P with P + 1 free too (the dashboard and optuna-dashboard)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port = probe.getsockname()[1]
        if port < 65535 and port_free(port + 1):
            return port
    raise RuntimeError("no two free consecutive ports")


def dashboard_command() -> list[str]:
    """`dmo dashboard` once dmo.cli.main mounts it, else the module's own entry point.

    Reading main.py instead of importing it keeps the test from paying for every
    command module's imports (torch, Ray) in this process.
    """
    if "dashboard_cmd" in (REPO / "dmo" / "cli" / "main.py").read_text():
        return [str(Path(sys.executable).with_name("dmo")), "dashboard"]
    return [sys.executable, "-m", "dmo.cli.dashboard_cmd"]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Dashboard:
    url: str
    process: subprocess.Popen[str]
    output: str = ""  # stdout, once stopped


@contextmanager
def running_dashboard(
    store_url: str,
    port: int,
    *extra: str,
    also_wait_for: tuple[str, ...] = (),
    timeout_s: float = 90.0,
) -> Iterator[Dashboard]:
    """Start it, wait until the app (and ``also_wait_for``) answer, and on exit stop it with
    SIGINT (Ctrl-C), checking it exits with code 0."""
    command = [*dashboard_command(), "--port", str(port), "--store-url", store_url, *extra]
    # Its own session, so a dashboard that fails to stop is killed with its children, never orphaned.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True)
    dashboard = Dashboard(url=f"http://{HOST}:{port}", process=process)
    try:
        deadline = time.monotonic() + timeout_s
        while not all(answers(u) for u in (f"{dashboard.url}/_stcore/health", *also_wait_for)):
            assert process.poll() is None, f"dmo dashboard exited with {process.returncode}"
            assert time.monotonic() < deadline, "dmo dashboard did not answer in time"
            time.sleep(0.3)
        yield dashboard
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            # Each child gets STOP_TIMEOUT_S to stop before it is killed: two children, and a loaded machine.
            dashboard.output, _ = process.communicate(timeout=3 * STOP_TIMEOUT_S + 30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    assert process.returncode == 0, dashboard.output
