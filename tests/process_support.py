"""Ending the processes a test started, and only those: by session, never by name.

`ray start` daemonises its processes, and `ray stop` stops every Ray on the machine, a user's running
`dmo` among them (the cluster test's `ray stop --force` once killed a `dmo demo` running beside the
suite). A launcher started with ``start_new_session=True`` leads a session of its own; everything it
leaves behind keeps that session id, whatever it was reparented to.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (state first, session id fourth); None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def session_members(session_id: int) -> list[int]:
    """The live (not zombie) processes of a session."""
    members = []
    for entry in Path("/proc").iterdir():
        fields = stat_fields(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and int(fields[3]) == session_id and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def end_session(session_id: int, *, passes: int = 20) -> list[int]:
    """SIGKILL every live process of a session a test started (a killed driver's Ray helpers, a
    `ray start`'s daemons), one pid at a time; returns the pids ended. A member may fork while a scan
    of /proc runs, after its entry was read, so scans repeat until one finds nothing left to end; a
    session still alive after ``passes`` scans is an error naming its pids."""
    ended: dict[int, None] = {}  # ordered, and a pid still dying when the next scan reads it counts once
    for _ in range(passes):
        members = session_members(session_id)
        if not members:
            return list(ended)
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
                ended[pid] = None
            except ProcessLookupError:
                pass
        time.sleep(0.01)  # let the killed die before the next scan reads them again
    raise RuntimeError(f"session {session_id} still has processes {session_members(session_id)} after {passes} scans")
