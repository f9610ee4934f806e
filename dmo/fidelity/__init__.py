"""Proxy fidelity: do merged proxies rank mixtures like mixture-trained models?"""

from __future__ import annotations

from dmo.fidelity.ranking import (
    average_ranks,
    fidelity_summary,
    kendall_tau,
    pick_in_top_k,
    spearman,
    top1_regret,
)

__all__ = [
    "average_ranks",
    "fidelity_summary",
    "kendall_tau",
    "pick_in_top_k",
    "spearman",
    "top1_regret",
]
