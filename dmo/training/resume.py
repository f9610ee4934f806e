"""Resumable training state: model, optimiser, data stream and step, saved atomically.

Tensors go to safetensors; the optimiser state is loaded with
`weights_only=True`, so a resume never unpickles arbitrary objects.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from dmo.errors import CheckpointError
from dmo.files import write_failure


@dataclass(frozen=True)
class ResumeState:
    step: int
    stream: dict
    last_loss: float


def resume_dir_for(out_dir: Path) -> Path:
    return out_dir.parent / f".resume-{out_dir.name}"


def save_resume_state(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: ResumeState
) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(tmp / "model.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "progress.json").write_text(
            json.dumps({"step": state.step, "stream": state.stream, "last_loss": state.last_loss})
        )
        old = folder.with_name(folder.name + ".old")
        if folder.exists():
            os.rename(folder, old)
        os.rename(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, (OSError, SafetensorError)):  # a full disk or a quota: the user's to fix
            raise CheckpointError(
                f"could not write the resumable training state: {write_failure(error)}",
                where=str(folder),
                hint="check that the directory is writable and the disk has space",
            ) from error
        raise


def load_resume_state(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> ResumeState | None:
    """Restore model and optimiser in place; None when there is nothing (complete) to resume."""
    if not (folder / "progress.json").is_file():
        return None
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    progress = json.loads((folder / "progress.json").read_text())
    return ResumeState(step=progress["step"], stream=progress["stream"], last_loss=progress["last_loss"])
