"""The test helper that ends a session: every process in it, its forks included, and nothing outside it."""

from __future__ import annotations

import subprocess
import sys
import time

from process_support import end_session, session_members, stat_fields

# A session leader whose child keeps forking short-lived grandchildren: a scan of /proc can miss a fork
# made after it read the parent's entry, so one pass alone may leave a process behind (the single scan
# this replaced did in 2 of 5 runs of this test).
_FORKER = """
import os, time
if os.fork() == 0:
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        time.sleep(0.01)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def test_a_session_that_keeps_forking_is_ended_whole_and_nothing_else():
    leader = subprocess.Popen([sys.executable, "-c", _FORKER], start_new_session=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        time.sleep(1.0)  # the child is forking by now
        ended = end_session(leader.pid)
        assert leader.pid in ended and len(ended) >= 3  # the leader, its forking child, a grandchild or more
        time.sleep(0.2)
        assert not [pid for pid in ended if _alive(pid)]
        assert not session_members(leader.pid)
        assert _alive(bystander.pid), "another session is left alone"
    finally:
        for process in (leader, bystander):
            process.kill()
            process.wait()

