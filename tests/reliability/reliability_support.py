"""Helpers of the reliability tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def small_project(workdir: Path, **training: dict) -> dict:
    """configs/tiny.yaml with few base steps (the faults, not the models, are under test)."""
    data = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    data["project"]["workdir"] = str(workdir)
    data["training"]["base"]["steps"] = 10
    data["training"]["expert"]["steps"] = 12
    for stage, overrides in training.items():
        data["training"][stage] = {**data["training"][stage], **overrides}
    data["evaluation"]["dev_limit"] = 8
    return data


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass(frozen=True)
class Project:
    """A config file, its parsed config and its SQLite store (base and experts trained)."""

    yaml_path: Path
    store_url: str

    @property
    def config(self):
        from dmo.config import load_config

        return load_config(self.yaml_path)


def holders_of(path: Path) -> set[int]:
    """PIDs of the processes that have `path` open (from /proc; Linux only)."""
    target = str(path.resolve())
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) == target:
                    pids.add(int(entry.name))
                    break
        except OSError:  # the process ended or is not ours to read
            continue
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TcpProxy:
    """A TCP forwarder from 127.0.0.1:`port` to `target`, to take a database away and back.

    `cut()` drops every open connection and refuses new ones (the port stops listening),
    as a crashed server or a network partition would; `restore()` listens again on the
    same port. `cut_on(pattern)` cuts at the moment a client sends bytes containing
    `pattern` (before they reach the server), i.e. in the middle of a transaction.
    """

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._trip: bytes | None = None
        self.tripped = threading.Event()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._open = self._open, []
        if listener is not None:
            _close(listener)  # shutdown wakes the thread blocked in accept()
        for connection in connections:
            _close(connection)

    def cut_on(self, pattern: bytes) -> None:
        self.tripped.clear()
        self._trip = pattern

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client and self._trip is not None and self._trip in data:
                    self._trip = None
                    self.cut()
                    self.tripped.set()
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
