"""Proxy fidelity: do merged proxies rank mixtures like mixture-trained models?"""

from __future__ import annotations

from dmo._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "average_ranks": "dmo.fidelity.ranking",
        "fidelity_summary": "dmo.fidelity.ranking",
        "kendall_tau": "dmo.fidelity.ranking",
        "pick_in_top_k": "dmo.fidelity.ranking",
        "spearman": "dmo.fidelity.ranking",
        "top1_regret": "dmo.fidelity.ranking",
    },
)

__all__ = [
    "average_ranks",
    "fidelity_summary",
    "kendall_tau",
    "pick_in_top_k",
    "spearman",
    "top1_regret",
]
