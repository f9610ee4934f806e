"""Proxies of LoRA experts built from their factors: K adapters of memory, not K model copies.

For a matrix every expert adapts with LoRA, ``W(w) = β·W0 + Σ_i c_i s_i B_i A_i
= β·W0 + [B_1…B_K]·diag(c ⊗ s ⊗ 1_r)·[A_1;…;A_K]`` — one (d_out × Kr)(Kr × d_in) ``addmm``
per matrix, where ``β, c`` are the fused plan of the merge method (linear or task arithmetic;
see :class:`~dmo.merging.methods.base.GemvPlan`). This is exactly what folding each expert
(``merge_and_unload``) and merging the dense checkpoints gives, since both are linear in the
deltas; the factors themselves are never interpolated.

Tensors trained in full (routers, a projector, any unfrozen tensor) and matrices that some
expert changed densely go through a :class:`~dmo.merging.bank.TaskVectorBank` over just those
tensors. Everything else keeps the base's values. Methods that sparsify per tensor (ties, dare_*)
need every dense delta at once and are refused here.

The base is held once. The bank keeps references to the base's tensors, not copies, and a model
it is bound to (the evaluator's, built from the base) never has its adapted matrices written:
:meth:`FactoredBank.load_into` sets per-column coefficients that a forward hook on each adapted
``nn.Linear`` uses to add ``((x·Aᵀ)·c)·Bᵀ`` to its output — the proxy's product, unmerged, for
K·r·(d_in + d_out) extra multiply-adds per token and matrix. :meth:`merged_state_dict` and
:meth:`merge_matrices_into` build the merged matrices themselves when a checkpoint is wanted.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from dmo.errors import MergeError
from dmo.merging.adapters import LoraExpert
from dmo.merging.bank import DEFAULT_EXCLUDE, TaskVectorBank, selects
from dmo.merging.methods import MergeMethod, get_method
from dmo.mixture import check_weights

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class FactoredMatrix:
    """One adapted matrix: the base ``w0`` and every expert's factors stacked along the rank."""

    name: str
    w0: torch.Tensor  # (d_out, d_in) float32
    b: torch.Tensor  # (d_out, Σ r_i) float32
    a: torch.Tensor  # (Σ r_i, d_in) float32
    column_scale: torch.Tensor  # (Σ r_i,) s_i for each of expert i's columns
    column_expert: torch.Tensor  # (Σ r_i,) long: which expert owns each column

    def columns(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(Σ r_i,) the weight of each factor column: the merge coefficient of its expert times its scale."""
        return coefficients[self.column_expert] * self.column_scale

    def merged(self, beta: float, coefficients: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return torch.addmm(self.w0, self.b * self.columns(coefficients), self.a, beta=beta, out=out)


def _low_rank_hook(a: torch.Tensor, b: torch.Tensor, columns: torch.Tensor):
    """A forward hook adding the proxy's delta ``x·(B·diag(columns)·A)ᵀ`` to a linear layer's output."""

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        return output + F.linear(F.linear(inputs[0], a) * columns, b)

    return hook


class FactoredBank:
    """Proxies of K LoRA experts over one base; same calls as :class:`TaskVectorBank`."""

    def __init__(self, base: StateDict, experts: Sequence[LoraExpert], *,
                 exclude: Sequence[str] = DEFAULT_EXCLUDE):
        if not experts:
            raise MergeError("no experts to merge", where="experts", hint="give one or more")
        self.expert_names = tuple(e.name for e in experts)
        dense_names = self._dense_names(base, experts, exclude)
        factored = sorted({n for e in experts for n in e.factors if n not in dense_names})
        self.matrices = tuple(self._stack(name, base, experts) for name in factored)
        self.dense: TaskVectorBank | None = None
        if dense_names:
            subset = {n: base[n] for n in sorted(dense_names)}
            self.dense = TaskVectorBank.from_state_dicts(
                subset, [_dense_values(subset, e) for e in experts], expert_names=self.expert_names, exclude=())
        changed = dense_names | set(factored)
        self.kept = {n: t.detach() for n, t in base.items() if n not in changed}  # references: the base once
        # model -> the column weights its hooks read, one tensor per matrix, updated in place per proxy
        self._bound: weakref.WeakKeyDictionary[nn.Module, tuple[torch.Tensor, ...]] = weakref.WeakKeyDictionary()

    @staticmethod
    def _dense_names(base: StateDict, experts: Sequence[LoraExpert], exclude: Sequence[str]) -> set[str]:
        """Tensors some expert trained in full; a matrix one expert adapts and another trains in full
        goes dense too (its factors are folded for that matrix only)."""
        dense = set()
        for expert in experts:
            for name in (*expert.factors, *expert.full):
                if name not in base:
                    raise MergeError(f"the adapter changes {name}, which the base does not have", where=expert.name,
                                     hint="was this adapter trained from another base model?")
                if not selects(name, None, exclude):
                    raise MergeError(f"the adapter changes {name}, which merges keep at the base's values "
                                     "(the frozen vision tower)", where=expert.name)
            for name, value in expert.full.items():
                if tuple(value.shape) != tuple(base[name].shape):
                    raise MergeError(f"tensor {name} has shape {tuple(value.shape)}, the base "
                                     f"{tuple(base[name].shape)}", where=expert.name,
                                     hint="was this adapter trained from another base model?")
                dense.add(name)
        return dense

    @staticmethod
    def _stack(name: str, base: StateDict, experts: Sequence[LoraExpert]) -> FactoredMatrix:
        # A reference, not a copy (the base is held once): bound models are never written here, see load_into.
        w0 = base[name].detach().to(torch.float32)
        bs, as_, scales, owners = [], [], [], []
        for index, expert in enumerate(experts):
            factors = expert.factors.get(name)
            if factors is None:
                continue  # this expert left the matrix at the base: no columns
            if w0.dim() != 2 or factors.b.shape[0] != w0.shape[0] or factors.a.shape[1] != w0.shape[1]:
                raise MergeError(f"{name}: LoRA factors of {factors.b.shape[0]} × {factors.a.shape[1]}, the base "
                                 f"matrix is {tuple(w0.shape)}", where=expert.name,
                                 hint="was this adapter trained from another base model?")
            bs.append(factors.b.to(torch.float32))
            as_.append(factors.a.to(torch.float32))
            scales.append(torch.full((factors.rank,), factors.scale, dtype=torch.float32))
            owners.append(torch.full((factors.rank,), index, dtype=torch.long))
        return FactoredMatrix(name, w0, torch.cat(bs, 1).contiguous(), torch.cat(as_, 0).contiguous(),
                              torch.cat(scales), torch.cat(owners))

    def to(self, device: torch.device | str) -> FactoredBank:
        """The same bank on ``device`` (a GPU evaluator merges where it scores)."""
        moved = copy.copy(self)
        moved.matrices = tuple(FactoredMatrix(m.name, *(t.to(device) for t in (m.w0, m.b, m.a, m.column_scale,
                                                                                   m.column_expert)))
                               for m in self.matrices)
        moved.dense = self.dense.to(device) if self.dense is not None else None
        moved.kept = {n: t.to(device) for n, t in self.kept.items()}
        moved._bound = weakref.WeakKeyDictionary()
        return moved

    # ------------------------------------------------------------------ sizes

    @property
    def num_experts(self) -> int:
        return len(self.expert_names)

    @property
    def nbytes(self) -> int:
        """Memory the bank adds to the base it refers to: every expert's factors, and the dense bank of what
        was trained in full (its own copy of those few tensors and their K deltas)."""
        factors = sum(t.nbytes for m in self.matrices for t in (m.b, m.a, m.column_scale, m.column_expert))
        return factors + (self.dense.nbytes if self.dense else 0)

    # ------------------------------------------------------------------ merging

    def _plan(self, weights: Sequence[float] | torch.Tensor, method: str | MergeMethod) -> tuple[float, torch.Tensor]:
        method = get_method(method) if isinstance(method, str) else method
        if not method.fused:
            raise MergeError(f"{method.name} sparsifies each dense task vector; LoRA experts kept as factors merge "
                             "with linear or task_arithmetic", where="search.merge.method",
                             hint="use task_arithmetic, or import the experts folded into full checkpoints")
        values = [float(w) for w in (weights.reshape(-1).tolist() if isinstance(weights, torch.Tensor) else weights)]
        plan = method.gemv_plan(check_weights(values, self.expert_names, simplex=False, where="weights"))
        if abs(plan.beta - 1.0) > 1e-12:
            # β ≠ 1 (linear without normalize, weights not summing to 1) scales every tensor of the base,
            # the ones no expert changed too; this bank keeps those as they are.
            raise MergeError(f"{method.name} with these weights scales the base by {plan.beta:g}", where="weights",
                             hint="give weights that sum to 1, or normalize: true")
        device = self.matrices[0].w0.device if self.matrices else "cpu"
        return plan.beta, torch.tensor(plan.coefficients, dtype=torch.float32, device=device)

    def merged_state_dict(self, weights: Sequence[float] | torch.Tensor,
                          method: str | MergeMethod = "task_arithmetic") -> dict[str, torch.Tensor]:
        """Every tensor of the proxy, sorted by name."""
        beta, coefficients = self._plan(weights, method)
        tensors = dict(self.kept)
        with torch.no_grad():
            for matrix in self.matrices:
                tensors[matrix.name] = matrix.merged(beta, coefficients)
            if self.dense is not None:
                tensors.update(self.dense.merged_state_dict(weights, method))
        return {name: tensors[name] for name in sorted(tensors)}

    def bind(self, model: nn.Module) -> nn.Module:
        """Hook ``model`` (float32, built from the base's config) so that proxies reach it without writing its
        adapted matrices; it starts as the base. Tensors that differ from the base are given the base's values."""
        if model in self._bound:
            return model
        tensors = dict(model.named_parameters(remove_duplicate=False))
        buffers = dict(model.named_buffers(remove_duplicate=False))
        modules = dict(model.named_modules(remove_duplicate=False))
        columns = []
        with torch.no_grad():
            for matrix in self.matrices:
                tensor, module = tensors.get(matrix.name), modules.get(matrix.name.removesuffix(".weight"))
                if tensor is None or not isinstance(module, nn.Linear) or module.weight is not tensor \
                        or tensor.shape != matrix.w0.shape or tensor.dtype != torch.float32:
                    raise MergeError(f"model tensor {matrix.name} is not the float32 weight of a linear layer "
                                     f"of shape {tuple(matrix.w0.shape)}", where="model",
                                     hint="bind a float32 model built from the base's config")
                if tensor.data_ptr() != matrix.w0.data_ptr():
                    tensor.data.copy_(matrix.w0)
                weights = torch.zeros(matrix.a.shape[0], dtype=torch.float32, device=matrix.a.device)
                module.register_forward_hook(_low_rank_hook(matrix.a, matrix.b, weights))
                columns.append(weights)
            for name, value in self.kept.items():
                target = tensors.get(name, buffers.get(name))
                if target is not None and target.data_ptr() != value.data_ptr():
                    target.data.copy_(value)
        if self.dense is not None:
            self.dense.bind(model)
        self._bound[model] = tuple(columns)
        return model

    def load_into(self, model: nn.Module, weights: Sequence[float] | torch.Tensor,
                  method: str | MergeMethod = "task_arithmetic") -> nn.Module:
        """Make ``model`` compute the proxy for ``weights`` (binding it on first use): no matrix is merged."""
        _, coefficients = self._plan(weights, method)  # β is 1 (see _plan)
        if model not in self._bound:
            self.bind(model)
        with torch.no_grad():
            for matrix, columns in zip(self.matrices, self._bound[model], strict=True):
                columns.copy_(matrix.columns(coefficients))
            if self.dense is not None:
                self.dense.load_into(model, weights, method)
        return model

    def merge_matrices_into(self, outputs: Mapping[str, torch.Tensor], weights: Sequence[float] | torch.Tensor,
                            method: str | MergeMethod = "task_arithmetic") -> None:
        """Write every merged matrix of the proxy into ``outputs`` (preallocated float32 by name; never the
        base's own tensors, which the bank refers to)."""
        beta, coefficients = self._plan(weights, method)
        with torch.no_grad():
            for matrix in self.matrices:
                matrix.merged(beta, coefficients, out=outputs[matrix.name].data)

    def __repr__(self) -> str:
        return (f"FactoredBank(experts={list(self.expert_names)}, matrices={len(self.matrices)}, "
                f"dense={self.dense.num_params if self.dense else 0:,}, nbytes={self.nbytes / 2**20:.1f} MiB)")


def _dense_values(base: StateDict, expert: LoraExpert) -> dict[str, torch.Tensor]:
    """The expert's value of each dense tensor: trained in full, base + folded factors, or the base's."""
    values = {}
    for name, tensor in base.items():
        if name in expert.full:
            values[name] = expert.full[name]
        elif name in expert.factors:
            values[name] = tensor.to(torch.float32) + expert.factors[name].dense()
        else:
            values[name] = tensor
    return values
