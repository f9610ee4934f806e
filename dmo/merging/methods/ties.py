"""TIES and the sparse task-arithmetic family (mergekit's generalized_task_arithmetic.py).

For each parameter tensor: sparsify every task vector (TIES keeps the
``density`` fraction of largest magnitudes; DARE drops at random), scale by the
weights, optionally keep only the entries that agree with the majority sign
(``consensus="sum"``: the sign of the weighted sum), add them up, optionally
divide by the sum of the weights that survived the mask, multiply by ``λ`` and
add to the base. Same formulas, order of operations and defaults as mergekit,
so outputs match to float32 rounding.

Magnitude top-k and sign consensus are per tensor, so this is not a GEMV: the
bank runs it tensor by tensor (several times slower than linear/task
arithmetic, and the argsort costs O(n log n) per tensor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from dmo.merging.methods.base import (
    MergeMethod,
    ParamSpec,
    as_bool,
    as_density,
    as_finite_float,
    as_seed,
    rescaled_masked_tensor,
)
from dmo.merging.methods.dare import bernoulli_sparsify

Sparsification = Literal["magnitude", "random"]


def magnitude_sparsify(tensor: torch.Tensor, density: float, rescale_l1: bool) -> torch.Tensor:
    """Keep the ``density`` fraction of largest |entries|, at least one (mergekit's magnitude)."""
    if density >= 1:
        return tensor
    if density <= 0 or tensor.numel() == 0:
        return torch.zeros_like(tensor)
    k = max(1, int(density * tensor.numel()))
    mask = torch.zeros(tensor.numel(), dtype=tensor.dtype, device=tensor.device)
    magnitudes = tensor.abs().reshape(-1)
    if magnitudes.device.type == "cpu":
        magnitudes = magnitudes.float()
    mask[torch.argsort(magnitudes, descending=True)[:k]] = 1
    return rescaled_masked_tensor(tensor, mask.reshape_as(tensor), rescale_l1)


def majority_sign_mask(deltas: torch.Tensor, mask_dtype: torch.dtype) -> torch.Tensor:
    """Entries whose sign agrees with the sign of the weighted sum; zero sums count as + (TIES)."""
    sign = deltas.sign().to(mask_dtype)
    majority = (deltas.sum(dim=0) >= 0).to(mask_dtype) * 2 - 1
    return sign == majority


@dataclass(frozen=True)
class SparseTaskArithmetic(MergeMethod):
    """Task arithmetic with per-tensor sparsification and optional sign consensus."""

    name: str
    sparsification: Sparsification
    consensus: bool
    normalize: bool
    rescale: bool
    density: float = 1.0
    lambda_: float = 1.0
    int8_mask: bool = False
    random_seed: int = 0

    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "density": ParamSpec("density", as_density, "a number in [0, 1]"),
        "lambda": ParamSpec("lambda_", as_finite_float, "a finite number"),
        "normalize": ParamSpec("normalize", as_bool, "true or false (1 or 0)"),
        "rescale": ParamSpec("rescale", as_bool, "true or false (1 or 0)"),
        "int8_mask": ParamSpec("int8_mask", as_bool, "true or false (1 or 0)"),
        "seed": ParamSpec("random_seed", as_seed, "a non-negative integer"),
    }

    @property
    def seed(self) -> int | None:
        return self.random_seed if self.sparsification == "random" else None

    def merge_tensor(
        self,
        base: torch.Tensor,
        deltas: torch.Tensor,
        weights: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        # A fresh buffer: `deltas` may be a view of the bank and must never be written.
        sparse = base.new_empty((deltas.shape[0], *base.shape))  # (K, *shape)
        for index in range(deltas.shape[0]):
            if self.sparsification == "magnitude":
                sparse[index] = magnitude_sparsify(deltas[index], self.density, self.rescale)
            else:
                sparse[index] = bernoulli_sparsify(
                    deltas[index], self.density, self.rescale, generator
                )
        weights = weights.to(sparse.dtype).reshape((-1,) + (1,) * base.dim())  # (K, 1, ...)
        sparse.mul_(weights)
        if self.consensus:
            mask = majority_sign_mask(sparse, torch.int8 if self.int8_mask else base.dtype)
            mixed = (sparse * mask).sum(dim=0)
            divisor = (weights * mask).sum(dim=0)
            divisor[divisor == 0] = 1
        else:
            mixed = sparse.sum(dim=0)
            divisor = weights.sum(dim=0)
            divisor[divisor.abs() < 1e-8] = 1
        if self.normalize:
            mixed /= divisor
        if self.lambda_ != 1:
            mixed *= self.lambda_
        return (base + mixed).to(base.dtype)

    def mergekit_parameters(self) -> dict[str, Any]:
        parameters: dict[str, Any] = {
            "lambda": self.lambda_,
            "normalize": self.normalize,
            "rescale": self.rescale,
        }
        if self.consensus:
            parameters["int8_mask"] = self.int8_mask
        return parameters

    def mergekit_model_parameters(self) -> dict[str, Any]:
        return {"density": self.density}
