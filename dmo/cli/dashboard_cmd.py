"""`dmo dashboard`: serve the Streamlit views of the store on 127.0.0.1 until Ctrl-C.

The app (``dashboards/app.py``) runs under ``streamlit run`` in a child
process and finds the store in ``$DMO_STORE_URL``. ``--optuna`` also starts
optuna-dashboard on the same database (the Optuna studies live beside our
tables), one port up, and the app links to it. The children get their own
process group, so Ctrl-C reaches only this process, which then stops both
and waits for them: nothing is left listening.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.markup import escape

import dashboards
from dashboards import OPTUNA_URL_ENV, STORE_URL_ENV
from dashboards.optuna_server import STORAGE_URL_ENV as OPTUNA_STORAGE_URL_ENV
from dmo.cli.common import console, open_store
from dmo.cli.options import DEFAULT_CONFIG, ConfigOption, StoreUrlOption
from dmo.errors import DmoError

HOST = "127.0.0.1"
DEFAULT_PORT = 8501
APP = Path(dashboards.__file__).resolve().with_name("app.py")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


@dataclass
class _Server:
    name: str
    url: str
    health_url: str
    process: subprocess.Popen[bytes]
    log: IO[bytes] | None = None  # its output, when not shown on the terminal


def dashboard(
    port: Annotated[
        int,
        typer.Option(
            "--port",
            "-p",
            min=1,
            max=65534,
            help="Port of the dashboard; --optuna uses the next one.",
        ),
    ] = DEFAULT_PORT,
    optuna: Annotated[
        bool,
        typer.Option(
            "--optuna", help="Also start optuna-dashboard on the same database, on port P+1."
        ),
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    store_url: StoreUrlOption = None,
) -> None:
    """Serve the dashboards (searches, one search, experts) on 127.0.0.1 until Ctrl-C."""
    with open_store(store_url, config) as store:  # the store must exist: a view creates nothing
        real_url, masked = store.url, store.url_masked
    ports = [port, port + 1] if optuna else [port]
    taken = [p for p in ports if not _port_free(p)]
    if taken:
        raise typer.BadParameter(f"port {taken[0]} on {HOST} is in use", param_hint="--port")

    env = {**os.environ, STORE_URL_ENV: real_url, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    env.pop(OPTUNA_URL_ENV, None)  # the app links to optuna-dashboard only when we start it
    if optuna:
        env[OPTUNA_URL_ENV] = f"http://{HOST}:{port + 1}"
    servers: list[_Server] = []
    with _stopped_by_signals():
        try:
            servers.append(_start_streamlit(port, env))
            if optuna:
                servers.append(_start_optuna_dashboard(real_url, port + 1, env))
            # The addresses first: they are known now, and a user (or a test) may stop us
            # as soon as the servers answer.
            console.print(f"dmo dashboard: [bold]http://{HOST}:{port}[/] (store {escape(masked)})")
            if optuna:
                console.print(f"optuna-dashboard: [bold]http://{HOST}:{port + 1}[/]")
            for server in servers:
                _wait_until_up(server)
            console.print("ready; Ctrl-C stops it.")
            _wait_for_exit(servers)
        except KeyboardInterrupt:
            console.print("stopping")
        finally:
            _stop(servers)


# --------------------------------------------------------------------------- children


def _start_streamlit(port: int, env: dict[str, str]) -> _Server:
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        HOST,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--logger.level",
        "warning",
        "--client.toolbarMode",
        "minimal",
    ]
    # Streamlit's banner repeats the URL we print; its errors still reach stderr.
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    base = f"http://{HOST}:{port}"
    return _Server("streamlit", base, f"{base}/_stcore/health", process)


def _start_optuna_dashboard(url: str, port: int, env: dict[str, str]) -> _Server:
    """optuna-dashboard, read-only (dashboards/optuna_server.py), the URL in its environment."""
    _ensure_optuna_tables(url)
    command = [sys.executable, "-m", "dashboards.optuna_server", HOST, str(port)]
    # It logs every request: keep its output for when it fails to start.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _stop, after the process
    process = subprocess.Popen(
        command, env={**env, OPTUNA_STORAGE_URL_ENV: url}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, cwd=str(APP.parent.parent),
    )
    base = f"http://{HOST}:{port}"
    return _Server("optuna-dashboard", base, f"{base}/", process, log)


def _ensure_optuna_tables(url: str) -> None:
    """optuna-dashboard refuses a database without Optuna's tables; a search creates them,
    and so do we (idempotently), so a store no search has used yet still opens."""
    import optuna

    optuna.storages.RDBStorage(url).engine.dispose()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _wait_until_up(server: _Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            if server.log is not None:
                server.log.seek(0)
                sys.stderr.write(server.log.read()[-4000:].decode(errors="replace"))
            raise DmoError(
                f"{server.name} exited with code {code} before serving",
                where="dmo dashboard",
                hint="its error is printed above",
            )
        import urllib.error
        import urllib.request  # here, not at the top: it costs every other command 14 ms of start-up

        try:
            with urllib.request.urlopen(server.health_url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers: up, whatever the page says
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    raise DmoError(
        f"{server.name} did not answer on {server.url} within {START_TIMEOUT_S:.0f} s",
        where="dmo dashboard",
    )


def _wait_for_exit(servers: list[_Server]) -> None:
    """Block until Ctrl-C; a child that dies on its own is an error (the other is stopped)."""
    while True:
        for server in servers:
            code = server.process.poll()
            if code is not None:
                raise DmoError(
                    f"{server.name} stopped unexpectedly with code {code}", where="dmo dashboard"
                )
        time.sleep(0.5)


def _stop(servers: list[_Server]) -> None:
    for server in servers:
        if server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        try:
            server.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
        if server.log is not None:
            server.log.close()


@contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """SIGTERM, SIGHUP and SIGINT stop the dashboard like Ctrl-C, so the children are never orphaned. SIGINT
    too: a process started with it ignored (a background job of a script, nohup) inherits the ignore, and
    Python then installs no Ctrl-C handler of its own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# `python -m dmo.cli.dashboard_cmd` runs the command on its own (the e2e test uses it while
# `dmo dashboard` is not mounted in dmo.cli.main).
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(dashboard)

if __name__ == "__main__":
    try:
        app()
    except DmoError as error:
        print(f"error: {error.render()}", file=sys.stderr)
        sys.exit(error.exit_code)
