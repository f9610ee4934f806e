"""Which bank a proxy evaluator holds, from what its experts are on disk.

Full checkpoints (dmo's own or a user's) go to the dense :class:`TaskVectorBank`; peft LoRA
adapter directories to the :class:`FactoredBank` (K adapters of memory). A mix of both is
refused for now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from dmo.errors import MergeError
from dmo.merging.adapters import is_adapter, read_adapter
from dmo.merging.bank import TaskVectorBank
from dmo.merging.factored import FactoredBank
from dmo.models.backends.base import ModelBackend


def open_bank(base_dir: Path, expert_dirs: Sequence[Path], *, backend: ModelBackend,
              base_state: Mapping[str, torch.Tensor], exclude: Sequence[str] | None = None,
              storage_dtype: torch.dtype = torch.float32) -> TaskVectorBank | FactoredBank:
    """The bank of ``expert_dirs`` over ``base_dir``.

    ``base_state`` is the proxy model as built for this base (routers included): the tensors
    adapters were trained from, since an adapter carries no copy of them.
    """
    expert_dirs = [Path(d) for d in expert_dirs]
    adapters = [is_adapter(d) for d in expert_dirs]
    exclude = tuple(backend.merge_exclude(Path(base_dir)) if exclude is None else exclude)
    if not any(adapters):
        return TaskVectorBank.from_checkpoints(base_dir, expert_dirs, backend=backend, exclude=exclude,
                                               storage_dtype=storage_dtype)
    base = {name: tensor.detach().to(torch.float32) if tensor.is_floating_point() else tensor.detach()
            for name, tensor in base_state.items()}
    if all(adapters):
        if storage_dtype != torch.float32:
            raise MergeError("LoRA experts are kept as factors in float32", where="search.merge.dtype",
                             hint="drop merge.dtype: bfloat16 (factors are already small)")
        return FactoredBank(base, [read_adapter(d) for d in expert_dirs], exclude=exclude)
    mixed = [d.name for d, adapter in zip(expert_dirs, adapters) if adapter]
    raise MergeError(f"experts {', '.join(mixed)} are LoRA adapters and the others full checkpoints",
                     where="experts", hint="give every expert in one form (fold adapters with peft's merge_and_unload)")
