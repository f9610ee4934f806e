"""Send a search to a Ray cluster as a Ray job: `dmo search submit`.

The job runs ``dmo search run config.yaml --json`` in a staging folder Ray
uploads. The store URL travels in the job's environment (``DMO_STORE_URL``),
never on its command line, where ``ps`` and the job list would show a
password; every argument is quoted with :func:`shlex.join`; the local staging
folder is removed once Ray has uploaded it, whatever happens.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dmo.errors import DmoError, SearchError

POLL_S = 2.0
DONE = ("SUCCEEDED", "FAILED", "STOPPED")
UNFINISHED = ("FAILED", "STOPPED")  # ended without its search finishing: exit 4
NO_AGENT = "No available agent to submit job"
AGENT_WAIT_S = 60.0


def job_entrypoint(*, trials: int | None, sampler: str | None, ray_address: str | None) -> str:
    command = ["dmo", "search", "run", "config.yaml", "--json"]
    if trials:
        command += ["--trials", str(trials)]
    if sampler:
        command += ["--sampler", sampler]
    if ray_address:
        command += ["--address", ray_address]
    return shlex.join(command)


def submit_search(
    config_path: Path, *, address: str, store_url: str, trials: int | None, sampler: str | None, wait: bool,
    ray_address: str | None,
) -> dict[str, Any]:
    from dmo.config import load_config, with_overrides
    from storage import mask_url
    from storage.db import parse_url

    # Refuse a bad config or flag here, not minutes later on the cluster.
    with_overrides(load_config(config_path), {"search.trials": ("--trials", trials), "search.sampler": ("--sampler", sampler)})
    if parse_url(store_url).get_backend_name() == "sqlite":
        raise SearchError("a cluster needs a store every node reaches", where="--store-url",
                          hint="use postgresql+psycopg://user@host/db")
    client = _client(address)
    staging = Path(tempfile.mkdtemp(prefix="dmo-job-"))
    try:
        try:
            shutil.copy(config_path, staging / "config.yaml")
        except OSError as error:
            raise DmoError(f"cannot stage the config for the job: {error}", where=str(config_path)) from None
        job_id = _submit(client, address, entrypoint=job_entrypoint(trials=trials, sampler=sampler,
                                                                     ray_address=ray_address),
                         runtime_env={"working_dir": str(staging),
                                      "env_vars": {"RAY_AUTH_MODE": "disabled", "DMO_STORE_URL": store_url}})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    status = _asked(address, job_id, lambda: str(client.get_job_status(job_id).value))
    while wait and status not in DONE:
        time.sleep(POLL_S)
        status = _asked(address, job_id, lambda: str(client.get_job_status(job_id).value))
    payload: dict[str, Any] = {"job_id": job_id, "status": status, "address": address, "store": mask_url(store_url)}
    if status in UNFINISHED:
        payload["logs_tail"] = _asked(address, job_id, lambda: client.get_job_logs(job_id))[-4000:]
    return payload


def _submit(client: Any, address: str, **job: Any) -> str:
    """Submit, retrying while the cluster says its job agent is not up yet (a head that just started
    answers "No available agent to submit job, please try again later" for a few seconds)."""
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            return client.submit_job(**job)
        except (OSError, RuntimeError) as error:  # OSError: the built-in ConnectionError and requests' errors
            no_agent = NO_AGENT in str(error)
            if no_agent and time.monotonic() <= deadline:
                time.sleep(POLL_S)  # the head's job agent may still be starting
                continue
            hint = (f"its head's job agent did not start in {AGENT_WAIT_S:.0f} s: another Ray on the head may hold "
                    "the agent's port (52365 by default; `ray start --dashboard-agent-listen-port`), see "
                    "dashboard_agent.log in its session logs") if no_agent else None
            raise DmoError(f"the cluster refused the job: {_first_line(error)}", where=address, hint=hint) from None


def _asked(address: str, job_id: str, ask: Callable[[], Any]) -> Any:
    """One question to the cluster about a submitted job; losing the cluster names the job to look up later."""
    try:
        return ask()
    except (OSError, RuntimeError) as error:
        raise DmoError(f"lost the cluster while following job {job_id}: {_first_line(error)}",
                       where=address, hint=f"the job may still run: `ray job status {job_id} --address {address}`"
                       ) from None


def _client(address: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise DmoError(f"cannot reach the Ray dashboard: {_first_line(error)}", where=address,
                       hint="check the address (http://HEAD:8265) and that `ray start --head` runs there") from None


def _first_line(error: BaseException) -> str:
    """An error's first line, or its type where it has no message (a bare TimeoutError())."""
    return (str(error).splitlines() or [type(error).__name__])[0]
