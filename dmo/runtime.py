"""Process-wide settings, made once and explicitly by an entry point (the CLI, a Ray worker).

Nothing in dmo changes global state on import; the entry points call these.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def set_torch_threads(threads: int) -> None:
    """Threads of torch's intra-op pool; a Ray task or actor that owns one CPU asks for one."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def compute_device(gpus: float, *, field: str, granted: Mapping[str, float] | None = None) -> torch.device:
    """Where a task's tensors live: the GPU Ray gave it (``CUDA_VISIBLE_DEVICES`` names only that one),
    or the CPU when the config asks for no GPU. ``granted`` is what Ray assigned the task, for the message."""
    import torch

    from dmo.errors import DmoError

    if gpus <= 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        assigned = f" (Ray granted {dict(sorted(granted.items()))})" if granted is not None else ""
        raise DmoError(f"{field} is {gpus:g}{assigned}, but torch sees no CUDA device here", where=field,
                       hint="install a CUDA build of torch on the GPU nodes, or set it to 0 to run on CPU")
    return torch.device("cuda")


def quiet_optuna() -> None:
    """Optuna at WARNING, and no warnings for the features a search relies on on purpose.

    Heartbeats, metric names and stale-trial recovery are marked experimental;
    tests cover them, so their warnings would only be noise for users.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def quiet_transformers() -> None:
    """No transformers progress bars or advisories in a worker: they would interleave with the CLI's bars.

    Set in each Ray task and actor (a cluster's workers do not inherit the CLI's environment).
    """
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()




# CPU features that decide which kernels MKL, oneDNN and ATen run, and so the order floating-point sums
# are taken in: two machines that agree on these train bit-identical models from the same inputs.
KERNEL_FEATURES = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_tile", "avx_vnni")


def numeric_platform() -> dict[str, object]:
    """What a CPU-trained model's bits depend on besides its inputs: torch's version, the kernels its
    dispatcher picks, and the CPU features MKL and oneDNN dispatch on. Kept in every checkpoint's
    ``dmo_training.json``, so a retrained model that differs can be told from a changed one."""
    import torch

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        flags = []
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_features": [feature for feature in KERNEL_FEATURES if feature in flags]}


__all__ = ["compute_device", "numeric_platform", "quiet_optuna", "quiet_transformers", "set_torch_threads"]
