"""The task-vector bank: build proxies ``θ(w) = θ0 + Δᵀc(w)`` in memory, one GEMV each.

Built once per worker from a base and K experts. The merged parameters of the
base are flattened into ``θ0`` (P,) float32 and the task vectors into ONE
contiguous ``Δ`` (K, P) — float32, or bfloat16 to halve memory and traffic
(accumulation stays float32). A proxy for linear or task arithmetic is then a
single memory-bound pass over ``Δ``: one ``torch.addmv`` (bfloat16: one per
upcast column block) written straight into a preallocated output. Methods that
sparsify per tensor (ties, dare_*) run tensor by tensor and are slower.

:meth:`TaskVectorBank.bind` turns a model's merged parameters into views of one
flat float32 buffer, so :meth:`TaskVectorBank.load_into` writes the next proxy
into the model with no copy, no allocation and no disk I/O. Excluded
parameters (by default the frozen vision tower) and non-float tensors keep the
base's values.

Merged parameters are selected by glob patterns (``fnmatch``) over state-dict
names: ``include`` (None = everything) minus ``exclude``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from dmo.config.names import VISION_TOWER_PATTERN
from dmo.errors import MergeError
from dmo.merging.compat import check_state_dict
from dmo.merging.methods import MergeMethod, get_method
from dmo.mixture import check_weights

if TYPE_CHECKING:
    from dmo.models.backends.base import ModelBackend

DEFAULT_EXCLUDE: tuple[str, ...] = (VISION_TOWER_PATTERN,)
STORAGE_DTYPES = (torch.float32, torch.bfloat16)
# A bfloat16 bank upcasts Δ block by block into a K × block float32 scratch of
# about this size (in L3, so the upcast is not a second trip to memory; 128K
# columns for K = 8 measured best). A float32 bank runs ONE addmv over all P
# columns: on a busy 2-core machine every extra BLAS call pays a fork/join
# barrier, and chunking gained nothing even on an idle one.
UPCAST_SCRATCH_BYTES = 4 << 20

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class ParamSlot:
    """Where one merged tensor lives in the flat vectors: ``flat[offset : offset + numel]``."""

    name: str
    shape: tuple[int, ...]
    offset: int
    numel: int

    @property
    def end(self) -> int:
        return self.offset + self.numel


def selects(name: str, include: Sequence[str] | None, exclude: Sequence[str]) -> bool:
    """Whether the glob patterns make ``name`` a merged parameter."""
    if include is not None and not any(fnmatchcase(name, pattern) for pattern in include):
        return False
    return not any(fnmatchcase(name, pattern) for pattern in exclude)


class TaskVectorBank:
    """θ0 (P,) and Δ (K, P) of K experts over one base; see the module docstring.

    One bank per worker: merges reuse scratch buffers, so do not call one bank
    from several threads at once.
    """

    def __init__(
        self,
        *,
        base_flat: torch.Tensor,
        deltas: torch.Tensor,
        slots: tuple[ParamSlot, ...],
        kept: dict[str, torch.Tensor],
        expert_names: tuple[str, ...],
    ):
        if base_flat.dtype != torch.float32 or base_flat.dim() != 1:
            raise ValueError("base_flat must be a float32 vector")
        if deltas.dim() != 2 or deltas.shape[1] != base_flat.shape[0] or not deltas.is_contiguous():
            raise ValueError("deltas must be a contiguous (K, P) matrix over base_flat")
        self.base_flat = base_flat  # (P,) float32
        self.deltas = deltas  # (K, P) float32 | bfloat16
        self.slots = slots
        self.kept = kept  # name -> base tensor, never merged
        self.expert_names = expert_names
        # model -> the flat buffer its merged parameters are views of
        self._bound: weakref.WeakKeyDictionary[nn.Module, torch.Tensor] = (
            weakref.WeakKeyDictionary()
        )
        if deltas.dtype == torch.float32:
            self._block = max(1, deltas.shape[1])
        else:
            self._block = max(1 << 15, UPCAST_SCRATCH_BYTES // (4 * max(1, deltas.shape[0])))
        self._upcast: torch.Tensor | None = None  # (K, block) float32 scratch of bfloat16 banks

    # ------------------------------------------------------------------ building

    @classmethod
    def from_state_dicts(
        cls,
        base: StateDict,
        experts: Iterable[StateDict],
        *,
        expert_names: Sequence[str] | None = None,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        include: Sequence[str] | None = None,
        storage_dtype: torch.dtype = torch.float32,
    ) -> TaskVectorBank:
        """Build from in-memory state dicts.

        ``experts`` is iterated once; a sized lazy iterable (as :meth:`from_checkpoints`
        passes) keeps only one expert in memory at a time.
        """
        if storage_dtype not in STORAGE_DTYPES:
            raise MergeError(
                f"unsupported storage dtype {storage_dtype}",
                where="storage_dtype",
                hint="float32 or bfloat16",
            )
        if not hasattr(experts, "__len__"):
            experts = list(experts)
        num_experts = len(experts)  # type: ignore[arg-type]
        if num_experts == 0:
            raise MergeError("no experts to merge", where="experts", hint="give one or more")
        if expert_names is None:
            expert_names = [f"expert{i}" for i in range(num_experts)]
        names = tuple(expert_names)
        if len(names) != num_experts:
            raise MergeError(f"{len(names)} names for {num_experts} experts", where="expert_names")

        slots, kept, offset = [], {}, 0
        # Sorted names: the order mergekit's scheduler merges tensors in, so seeded random
        # methods (DARE) draw their masks in the same order as mergekit's run_merge.
        for name in sorted(base):
            tensor = base[name]
            if tensor.is_floating_point() and selects(name, include, exclude):
                slots.append(ParamSlot(name, tuple(tensor.shape), offset, tensor.numel()))
                offset += tensor.numel()
            else:
                kept[name] = tensor.detach().clone()
        if not slots:
            raise MergeError(
                "the include/exclude patterns select no parameter to merge",
                where="merge.exclude",
                hint="check the glob patterns against the parameter names in docs/architecture.md",
            )

        base_flat = torch.empty(offset, dtype=torch.float32)
        for slot in slots:
            base_flat[slot.offset : slot.end] = base[slot.name].detach().reshape(-1)
        deltas = torch.empty((num_experts, offset), dtype=storage_dtype)
        for index, (name, expert) in enumerate(zip(names, experts)):
            check_state_dict(base, expert, expert=name)
            for slot in slots:
                theta = expert[slot.name].detach().reshape(-1).to(torch.float32)
                deltas[index, slot.offset : slot.end] = theta - base_flat[slot.offset : slot.end]
            _check_kept_equal(kept, expert, name)
        return cls(
            base_flat=base_flat, deltas=deltas, slots=tuple(slots), kept=kept, expert_names=names
        )

    @classmethod
    def from_checkpoints(
        cls,
        base_dir: str | Path,
        expert_dirs: Sequence[str | Path],
        *,
        backend: ModelBackend | None = None,
        exclude: Sequence[str] | None = None,
        include: Sequence[str] | None = None,
        storage_dtype: torch.dtype = torch.float32,
        verify: bool = True,
    ) -> TaskVectorBank:
        """Build from checkpoint directories, reading one expert at a time.

        Refuses experts trained from another base or with other MoD settings
        (the backend's guard, :mod:`dmo.merging.compat` for dmo's model) before
        reading any weights. ``exclude`` defaults to the backend's frozen vision tower.
        """
        from dmo.models.backends import backend_of_checkpoint

        base_dir, expert_dirs = Path(base_dir), [Path(d) for d in expert_dirs]
        backend = backend or backend_of_checkpoint(base_dir)
        backend.check_compatible(base_dir, expert_dirs)
        base = backend.state_dict(base_dir, verify=verify, like=expert_dirs[0] if expert_dirs else None)
        experts = (backend.state_dict(d, verify=verify) for d in expert_dirs)
        exclude = backend.merge_exclude(base_dir) if exclude is None else exclude
        return cls.from_state_dicts(
            base,
            _Sized(experts, len(expert_dirs)),
            expert_names=[d.name for d in expert_dirs],
            exclude=exclude,
            include=include,
            storage_dtype=storage_dtype,
        )

    def to(self, device: torch.device | str) -> TaskVectorBank:
        """The same bank on ``device`` (a GPU evaluator merges where it scores)."""
        return TaskVectorBank(base_flat=self.base_flat.to(device), deltas=self.deltas.to(device), slots=self.slots,
                              kept={n: t.to(device) for n, t in self.kept.items()}, expert_names=self.expert_names)

    # ------------------------------------------------------------------ sizes

    @property
    def num_experts(self) -> int:
        return self.deltas.shape[0]

    @property
    def num_params(self) -> int:
        """P: scalars merged per proxy (excluded parameters not counted)."""
        return self.deltas.shape[1]

    @property
    def nbytes(self) -> int:
        """Memory held by the bank (θ0, Δ and the kept base tensors)."""
        kept = sum(t.numel() * t.element_size() for t in self.kept.values())
        return self.base_flat.nbytes + self.deltas.nbytes + kept

    @property
    def merged_names(self) -> tuple[str, ...]:
        return tuple(slot.name for slot in self.slots)

    # ------------------------------------------------------------------ merging

    def merged_flat(
        self,
        weights: Sequence[float] | torch.Tensor,
        method: str | MergeMethod = "task_arithmetic",
        *,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The merged parameters of the proxy for ``weights`` as one (P,) float32 vector."""
        method = get_method(method) if isinstance(method, str) else method
        values = check_weights(_as_floats(weights), self.expert_names, simplex=False, where="weights")
        if out is None:
            out = torch.empty(self.num_params, dtype=torch.float32, device=self.base_flat.device)
        elif out.shape != (self.num_params,) or out.dtype != torch.float32:
            raise ValueError(f"out must be a float32 vector of {self.num_params} elements")
        elif not out.is_contiguous():
            raise ValueError("out must be contiguous")
        with torch.no_grad():
            if method.fused:
                self._gemv(method, values, out)
            else:
                self._per_tensor(method, values, out)
        return out

    def _gemv(self, method: MergeMethod, weights: tuple[float, ...], out: torch.Tensor) -> None:
        plan = method.gemv_plan(weights)
        coefficients = torch.tensor(plan.coefficients, dtype=torch.float32, device=self.base_flat.device)  # (K,)
        for start in range(0, self.num_params, self._block):
            stop = min(start + self._block, self.num_params)
            block = self.deltas[:, start:stop]  # (K, n), row stride P
            if block.dtype != torch.float32:
                block = self._upcast_block(block)
            base = self.base_flat[start:stop]
            torch.addmv(base, block.t(), coefficients, beta=plan.beta, out=out[start:stop])

    def _upcast_block(self, block: torch.Tensor) -> torch.Tensor:
        if self._upcast is None:
            self._upcast = torch.empty((self.num_experts, self._block), dtype=torch.float32,
                                       device=self.base_flat.device)
        scratch = self._upcast[:, : block.shape[1]]
        scratch.copy_(block)
        return scratch

    def _per_tensor(
        self, method: MergeMethod, weights: tuple[float, ...], out: torch.Tensor
    ) -> None:
        generator = None
        if method.seed is not None:
            # Masks are drawn where the bank lives: a GPU bank draws other masks than mergekit's CPU run.
            generator = torch.Generator(device=self.base_flat.device).manual_seed(method.seed)
        weight_tensor = torch.tensor(weights, dtype=torch.float32, device=self.base_flat.device)
        for slot in self.slots:
            base = self.base_flat[slot.offset : slot.end].reshape(slot.shape)
            deltas = self.deltas[:, slot.offset : slot.end].to(torch.float32)
            deltas = deltas.reshape((-1, *slot.shape))  # (K, *shape)
            merged = method.merge_tensor(base, deltas, weight_tensor, generator=generator)
            out[slot.offset : slot.end] = merged.reshape(-1)

    def merged_state_dict(
        self, weights: Sequence[float] | torch.Tensor, method: str | MergeMethod = "task_arithmetic"
    ) -> dict[str, torch.Tensor]:
        """Every tensor of the proxy (merged and kept), sorted by name, e.g. to load or save it.

        Merged tensors are views of one fresh flat buffer: ``load_state_dict`` copies
        them, but ``safetensors.save_file`` refuses shared storage (clone first).
        """
        flat = self.merged_flat(weights, method)
        tensors = {slot.name: flat[slot.offset : slot.end].view(slot.shape) for slot in self.slots}
        tensors.update(self.kept)
        return {name: tensors[name] for name in sorted(tensors)}

    # ------------------------------------------------------------------ models

    def bind(self, model: nn.Module) -> nn.Module:
        """Make ``model``'s merged parameters views of one flat buffer, holding the base's values.

        Later :meth:`load_into` calls write proxies straight into the model.
        Kept (excluded) tensors get the base's values once, here.
        """
        tensors = _named_tensors(model)
        for slot in self.slots:
            tensor = _lookup(tensors, slot.name)
            if tuple(tensor.shape) != slot.shape:
                raise MergeError(
                    f"model tensor {slot.name} has shape {tuple(tensor.shape)}, "
                    f"the bank {slot.shape}",
                    where="model",
                    hint="bind a model built from the base checkpoint's config",
                )
            if tensor.dtype != torch.float32:
                raise MergeError(
                    f"model tensor {slot.name} is {tensor.dtype}; proxies are built in float32",
                    where="model",
                    hint="call model.float() before binding it",
                )
        buffer = self.base_flat.clone()
        with torch.no_grad():
            for slot in self.slots:
                tensors[slot.name].data = buffer[slot.offset : slot.end].view(slot.shape)
            for name, value in self.kept.items():
                if name in tensors:
                    tensors[name].data.copy_(value)
        self._bound[model] = buffer
        return model

    def load_into(
        self,
        model: nn.Module,
        weights: Sequence[float] | torch.Tensor,
        method: str | MergeMethod = "task_arithmetic",
    ) -> nn.Module:
        """Write the proxy for ``weights`` into ``model`` in place (binding it on first use)."""
        buffer = self._bound.get(model)
        if buffer is None or not self._still_bound(model, buffer):
            self.bind(model)
            buffer = self._bound[model]
        self.merged_flat(weights, method, out=buffer)
        return model

    def _still_bound(self, model: nn.Module, buffer: torch.Tensor) -> bool:
        # model.to(...) or load_state_dict(assign=True) replace storages; then bind again.
        tensors = _named_tensors(model)
        start, itemsize = buffer.data_ptr(), buffer.element_size()
        return all(
            slot.name in tensors and tensors[slot.name].data_ptr() == start + slot.offset * itemsize
            for slot in self.slots
        )

    def __repr__(self) -> str:
        return (
            f"TaskVectorBank(experts={list(self.expert_names)}, params={self.num_params:,}, "
            f"storage={self.deltas.dtype}, nbytes={self.nbytes / 2**20:.1f} MiB)"
        )


class _Sized:
    """A generator of state dicts that knows its length, so experts are read one at a time."""

    def __init__(self, items: Iterable[StateDict], length: int):
        self._items, self._length = items, length

    def __len__(self) -> int:
        return self._length

    def __iter__(self):
        return iter(self._items)


def _as_floats(weights: Sequence[float] | torch.Tensor) -> list[float]:
    if isinstance(weights, torch.Tensor):
        return [float(w) for w in weights.reshape(-1).tolist()]
    return [float(w) for w in weights]


def _named_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = dict(model.named_buffers(remove_duplicate=False))
    tensors.update(model.named_parameters(remove_duplicate=False))
    return tensors


def _lookup(tensors: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    if name not in tensors:
        raise MergeError(
            f"model has no tensor {name}",
            where="model",
            hint="bind a model built from the base checkpoint's config",
        )
    return tensors[name]


def _check_kept_equal(kept: dict[str, torch.Tensor], expert: StateDict, expert_name: str) -> None:
    """Non-float tensors (ids, masks) cannot be averaged; they must agree with the base."""
    for name, value in kept.items():
        if not value.is_floating_point() and not torch.equal(expert[name], value):
            raise MergeError(
                f"non-float tensor {name} differs from the base's",
                where=expert_name,
                hint="integer tensors cannot be merged; experts must share them with the base",
            )
