"""DARE: drop each task-vector entry at random, keep ``density`` of them (mergekit's ``random``).

``dare_linear`` and ``dare_ties`` are :class:`~dmo.merging.methods.ties.SparseTaskArithmetic`
instances that use :func:`bernoulli_sparsify`; mergekit's defaults for both are
``rescale=true`` (kept entries rescaled so the tensor keeps its L1 norm — not
DARE's ``1/p``), ``normalize=false``, ``density=1`` (nothing dropped) and
``lambda=1``. The drop is drawn from a seeded ``torch.Generator``, so a proxy is
a function of (weights, seed). mergekit draws from torch's global generator
(seeded by ``run_merge``'s ``random_seed``) tensor by tensor in name order,
expert by expert; the bank draws in the same order, so the same seed gives the
same masks as mergekit (tests/merging/test_mergekit_interop.py). mergekit also
draws for excluded tensors (their weight is 0), so the streams agree only while
the excluded names sort after the merged ones — true of ``model.vision_tower.*``.
"""

from __future__ import annotations

import torch

from dmo.merging.methods.base import rescaled_masked_tensor


def bernoulli_sparsify(
    tensor: torch.Tensor, density: float, rescale_l1: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Keep each entry with probability ``density`` (mergekit sparsify.bernoulli)."""
    if density >= 1:
        return tensor
    # torch.bernoulli has no float16 CPU kernel; mergekit upcasts all but bfloat16 to float32.
    work_dtype = tensor.dtype if tensor.dtype == torch.bfloat16 else torch.float32
    probabilities = torch.full_like(tensor, fill_value=density, dtype=work_dtype)
    mask = torch.bernoulli(probabilities, generator=generator)
    return rescaled_masked_tensor(tensor.to(work_dtype), mask, rescale_l1).to(tensor.dtype)
