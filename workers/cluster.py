"""Connect to Ray: a local instance by default, a cluster with an address."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def connect(address: str | None = None, *, num_cpus: int | None = None, temp_dir: Path | None = None) -> None:
    """Start (or join) Ray once per process."""
    import ray

    if ray.is_initialized():
        return
    # A local Ray on the loopback interface needs no token, and reports no usage; set before
    # ray.init, and only if the user has not chosen otherwise.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not address and os.environ.get("RAY_ADDRESS"):
        address = "auto"  # inside a Ray job: join the cluster that runs it
    if address:
        ray.init(address=address, log_to_driver=False)
        return
    temp = Path(temp_dir or Path(tempfile.gettempdir()) / "dmo-ray")
    temp.mkdir(parents=True, exist_ok=True)
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        _temp_dir=str(temp),
        log_to_driver=False,
        configure_logging=False,
    )


def shutdown() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
