"""Which bank a proxy evaluator holds, from what its experts are on disk.

When every expert has a LoRA adapter — a peft adapter directory (an import) or a LoRA checkpoint
dmo trained, which keeps its adapter in ``adapter/`` beside the folded weights — and the merge is
linear in the deltas (linear, task arithmetic), the bank can be the :class:`FactoredBank` (K adapters
of memory). Otherwise it is the dense :class:`TaskVectorBank` over the checkpoints, with any bare
adapter folded onto the base first (exact, at dense memory): TIES and DARE sparsify each dense task
vector, which factors never form.

Factors cost compute where they save memory: each adapted matrix's forward hook adds K·r·(d_in +
d_out) multiply-adds per token beside the matrix's own d_in·d_out. On a 4096-wide model with four
rank-8 experts that is 1.6 %; on the demo's 128-wide one it is 50 %, and a proxy scored its 4,100
samples in 13.1 s factored against 9.5 s dense, with the same scores (bench/bank_layouts.py). So ``layout="auto"`` keeps factors only where the hooks add at most
:data:`HOOK_SHARE_LIMIT` of the adapted matrices' work or the dense bank would pass
:data:`DENSE_BYTES_LIMIT`; ``search.merge.bank`` forces either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from dmo.config.names import BANK_LAYOUTS
from dmo.errors import MergeError
from dmo.merging.adapters import LoraExpert, embedded_adapter, is_adapter, read_adapter
from dmo.merging.bank import TaskVectorBank
from dmo.merging.factored import FactoredBank
from dmo.models.backends.base import ModelBackend
from dmo.models.checkpoint import verify_checkpoint

HOOK_SHARE_LIMIT = 0.1  # factored hooks may add this share of the adapted matrices' multiply-adds
DENSE_BYTES_LIMIT = 1 << 30  # above this a dense bank is never chosen automatically


def hook_share(experts: Sequence[LoraExpert]) -> float:
    """The factored bank's extra multiply-adds per token over the adapted matrices' own."""
    extra, own = 0, 0
    for name in {n for e in experts for n in e.factors}:
        adapted = [e.factors[name] for e in experts if name in e.factors]
        d_out, d_in = adapted[0].b.shape[0], adapted[0].a.shape[1]
        extra += sum(f.rank for f in adapted) * (d_in + d_out)
        own += d_in * d_out
    return extra / own if own else 0.0


def dense_bank_bytes(base_state: Mapping[str, torch.Tensor], experts: int, storage_dtype: torch.dtype) -> int:
    """About what a dense bank of ``experts`` task vectors over this base holds."""
    element = torch.empty((), dtype=storage_dtype).element_size()
    return experts * element * sum(t.numel() for t in base_state.values() if t.is_floating_point())


def open_bank(base_dir: Path, expert_dirs: Sequence[Path], *, backend: ModelBackend,
              base_state: Mapping[str, torch.Tensor], exclude: Sequence[str] | None = None,
              storage_dtype: torch.dtype = torch.float32, fused: bool = True,
              layout: str = "auto") -> TaskVectorBank | FactoredBank:
    """The bank of ``expert_dirs`` over ``base_dir``.

    ``base_state`` is the proxy model as built for this base (routers included): the tensors
    adapters were trained from, since an adapter carries no copy of them. ``fused`` says whether
    the merge method is a GEMV over the deltas (:attr:`MergeMethod.fused`); only then can adapters
    stay factored. ``layout`` (:data:`BANK_LAYOUTS`) keeps them factored or folds them: ``auto``
    by the cost rule of the module docstring.
    """
    if layout not in BANK_LAYOUTS:
        raise MergeError(f"unknown bank layout {layout!r}", where="search.merge.bank",
                         hint="one of " + ", ".join(BANK_LAYOUTS))
    expert_dirs = [Path(d) for d in expert_dirs]
    exclude = tuple(backend.merge_exclude(Path(base_dir)) if exclude is None else exclude)
    pure = [is_adapter(d) for d in expert_dirs]
    adapters = [d if bare else embedded_adapter(d) for d, bare in zip(expert_dirs, pure)]
    factored = fused and all(a is not None for a in adapters) and (any(pure) or storage_dtype == torch.float32)
    if layout == "factored" and not factored:
        raise MergeError("a factored bank needs every expert as a LoRA adapter, kept in float32, and a merge "
                         "linear in the deltas (linear, task_arithmetic)", where="search.merge.bank",
                         hint="drop merge.bank: factored (auto chooses)")
    factored = factored and layout != "dense"
    # Read once: the cost rule, the factored bank and the folding below share them.
    read = [read_adapter(a, name=d.name) for a, d in zip(adapters, expert_dirs)] if factored else None  # type: ignore[arg-type]
    if read is not None and layout == "auto":
        factored = hook_share(read) <= HOOK_SHARE_LIMIT or dense_bank_bytes(
            base_state, len(read), storage_dtype) > DENSE_BYTES_LIMIT
    if not any(pure) and not factored:
        return TaskVectorBank.from_checkpoints(base_dir, expert_dirs, backend=backend, exclude=exclude,
                                               storage_dtype=storage_dtype)
    checkpoints = [d for d, bare in zip(expert_dirs, pure) if not bare]
    backend.check_compatible(Path(base_dir), checkpoints)
    base = {name: tensor.detach().to(torch.float32) if tensor.is_floating_point() else tensor.detach()
            for name, tensor in base_state.items()}
    if factored:
        if storage_dtype != torch.float32:
            raise MergeError("LoRA experts are kept as factors in float32", where="search.merge.dtype",
                             hint="drop merge.dtype: bfloat16 (factors are already small)")
        for checkpoint in checkpoints:
            verify_checkpoint(checkpoint)  # its manifest covers the embedded adapter's files
        assert read is not None
        return FactoredBank(base, read, exclude=exclude)
    # Adapters beside full checkpoints without one: fold each adapter onto the base (exact) into the dense bank,
    # on the host like the checkpoints it merges with.
    base = {name: tensor.cpu() for name, tensor in base.items()}
    experts = [folded(base, read[i] if read is not None else read_adapter(d, name=d.name)) if bare
               else backend.state_dict(d) for i, (d, bare) in enumerate(zip(expert_dirs, pure))]
    return TaskVectorBank.from_state_dicts(base, experts, expert_names=[d.name for d in expert_dirs],
                                           exclude=exclude, storage_dtype=storage_dtype)


def folded(base: Mapping[str, torch.Tensor], expert: LoraExpert) -> dict[str, torch.Tensor]:
    """The expert's full state: the base plus ``s·B·A`` on adapted matrices, its own values where trained in full."""
    state = dict(base)
    for name, factors in expert.factors.items():
        if name not in base:
            raise MergeError(f"the adapter changes {name}, which the base does not have", where=expert.name,
                             hint="was this adapter trained from another base model?")
        delta = factors.dense()
        if delta.shape != base[name].shape:
            raise MergeError(f"{name}: LoRA factors of {tuple(delta.shape)}, the base matrix is "
                             f"{tuple(base[name].shape)}", where=expert.name,
                             hint="was this adapter trained from another base model?")
        state[name] = base[name].to(torch.float32) + delta
    for name, tensor in expert.full.items():
        if name not in base or tensor.shape != base[name].shape:
            raise MergeError(f"the adapter's {name} does not match the base", where=expert.name,
                             hint="was this adapter trained from another base model?")
        state[name] = tensor.to(torch.float32)
    return state
