"""A two-node Ray cluster on 127.0.0.1: `dmo search submit` through the Jobs API, PostgreSQL store."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from pg_support import fresh_database
from process_support import end_session

from storage import Store

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def pg_store_url():
    with fresh_database("dmo_cluster") as url:
        yield url


@pytest.fixture()
def cluster(tmp_path, cli_env):
    ray = str(Path(sys.executable).parent / "ray")
    port, dashboard = _free_port(), _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    # Each node's dashboard agent on a port of its own: by default every agent binds 52365, which any
    # other Ray on the machine (a `dmo` run beside the suite) may hold; the head's agent then never
    # starts and the cluster refuses every job ("No available agent to submit job").
    head = [ray, "start", "--head", f"--port={port}", f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1",
            "--node-ip-address=127.0.0.1", "--num-cpus=1", "--include-dashboard=true", f"--temp-dir={temp}",
            f"--dashboard-agent-listen-port={_free_port()}"]
    worker = [ray, "start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
              f"--dashboard-agent-listen-port={_free_port()}"]
    sessions = []  # each `ray start` leads a session of its own, which its daemons keep
    try:
        for command in (head, worker):
            launcher = subprocess.Popen(command, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            sessions.append(launcher.pid)
            output, _ = launcher.communicate(timeout=120)
            assert launcher.returncode == 0, output.decode(errors="replace")[-3000:]
        yield f"http://127.0.0.1:{dashboard}", f"127.0.0.1:{port}"
    finally:
        # Not `ray stop`: it stops every Ray on the machine, a user's running `dmo` among them.
        for session in sessions:
            end_session(session)
        shutil.rmtree(temp, ignore_errors=True)


def test_submit_a_search_to_a_two_node_cluster(tiny_yaml, cluster, pg_store_url, cli_env):
    dashboard, gcs = cluster
    nodes = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address='{gcs}'); print(len([n for n in ray.nodes() if n['Alive']]))"],
                           env=cli_env, capture_output=True, text=True, timeout=120)
    assert nodes.stdout.strip().splitlines()[-1] == "2", nodes.stderr[-2000:]

    submitted = subprocess.run(
        [sys.executable, "-m", "dmo", "search", "submit", str(tiny_yaml), "--address", dashboard,
         "--store-url", pg_store_url, "--trials", "3", "--wait", "--json", "--ray-address", gcs],
        env=cli_env, capture_output=True, text=True, timeout=600,
    )
    job = json.loads(submitted.stdout) if submitted.stdout.strip() else {}
    assert submitted.returncode == 0, (job.get("logs_tail") or submitted.stderr)[-3000:]
    assert job["status"] == "SUCCEEDED", job

    store = Store.open(pg_store_url, upgrade=False)
    (search,) = store.list_searches()
    assert search.status == "finished"
    best = store.best_trials(search.id, top_k=1)
    assert best and abs(sum(best[0].weights.values()) - 1) < 1e-9
    assert store.trial_counts(search.id)["complete"] == 3
    store.dispose()

    # A job that fails on the cluster (its store does not exist there) fails the command: exit 4.
    missing = pg_store_url.rsplit("/", 1)[0] + "/dmo_no_such_database"
    failed = subprocess.run(
        [sys.executable, "-m", "dmo", "search", "submit", str(tiny_yaml), "--address", dashboard,
         "--store-url", missing, "--trials", "1", "--wait", "--ray-address", gcs],
        env=cli_env, capture_output=True, text=True, timeout=600,
    )
    assert failed.returncode == 4 and "Traceback (most recent call last)" not in failed.stderr, failed.stderr[-2000:]
    assert "FAILED" in failed.stdout and "failed" in failed.stderr
