"""The model-backend seam changed no number of dmo's own model (``mod_mllm``).

The figures below were printed by this same run on the code before the seam existed (commit
451058b): a 12-step base, three 6-step experts and one proxy of the tiny project, on one torch
thread. Training, scoring and merging through the backend must give them again.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from search_support import configured

BEFORE = {
    "base_loss_curve": [
        [
            1,
            5.596057891845703
        ],
        [
            2,
            5.509418964385986
        ],
        [
            3,
            5.3733930587768555
        ],
        [
            4,
            5.264864921569824
        ],
        [
            5,
            5.184963226318359
        ],
        [
            6,
            5.012055397033691
        ],
        [
            7,
            5.009725093841553
        ],
        [
            8,
            4.861299991607666
        ],
        [
            9,
            4.795163631439209
        ],
        [
            10,
            4.719585418701172
        ],
        [
            11,
            4.693171501159668
        ],
        [
            12,
            4.71566915512085
        ]
    ],
    "expert_final_losses": [
        4.303990840911865,
        4.285741329193115,
        4.096892356872559
    ],
    "expert_dev": [
        {
            "exact_match": 0.0,
            "likelihood": 1.1643229673306148
        },
        {
            "exact_match": 0.0,
            "likelihood": 1.263864276309808
        },
        {
            "exact_match": 0.0,
            "likelihood": 1.2448494633038838
        }
    ],
    "proxy": {
        "exact_match": {
            "general": 0.0,
            "ocr": 0.0,
            "counting": 0.0
        },
        "likelihood": {
            "general": 1.1292507871985435,
            "ocr": 1.0766411200165749,
            "counting": 1.424570195376873
        }
    }
}


@pytest.mark.slow
def test_the_backend_seam_changes_no_number_of_dmo_s_own_model(tmp_path):
    from dmo.config import load_config
    from dmo.data.prepared import prepare_data
    from dmo.search.pool import ProxySource
    from dmo.search.proxy import ProxyEvaluator
    from dmo.training.jobs import base_spec, ensure_model, expert_spec
    from storage import Store

    repo = Path(__file__).resolve().parents[2]
    config = configured(
        load_config(repo / "configs" / "tiny.yaml"), project__workdir=str(tmp_path),
        training__base={"steps": 12, "batch_size": 8, "lr": 3e-3, "warmup_steps": 2, "freeze_vision": False},
        training__expert={"steps": 6, "batch_size": 8, "lr": 2e-3, "warmup_steps": 1}, evaluation__dev_limit=8,
    )
    data = prepare_data(config)
    with Store.open(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        base = ensure_model(config, store, base_spec(config), data=data)
        experts = [ensure_model(config, store, expert_spec(config, d), base=base, data=data) for d in config.domain_names]
    source = ProxySource(config, Path(base.checkpoint_uri), tuple(Path(e.checkpoint_uri) for e in experts))
    proxy = ProxyEvaluator(source, data=data).evaluate([0.5, 0.3, 0.2])
    # A search that optimises exact match skips the likelihood pass; one that optimises likelihood runs it.
    assert "likelihood" not in proxy.scores
    by_likelihood = ProxyEvaluator(replace(source, config=configured(config, evaluation__score="likelihood")),
                                   data=data).evaluate([0.5, 0.3, 0.2])
    after = {
        "base_loss_curve": base.metrics["loss_curve"],
        "expert_final_losses": [e.metrics["final_loss"] for e in experts],
        "expert_dev": [e.metrics["dev"]["average"] for e in experts],
        "proxy": {**proxy.scores, "likelihood": by_likelihood.scores["likelihood"]},
    }
    assert _close(after, BEFORE), after


def _close(got, expected) -> bool:
    if isinstance(expected, dict):
        return set(got) == set(expected) and all(_close(got[k], expected[k]) for k in expected)
    if isinstance(expected, list):
        return len(got) == len(expected) and all(_close(a, b) for a, b in zip(got, expected))
    # float32 kernels differ between CPUs (another machine moved these figures by up to 1.4e-6 relative
    # after 12 + 6 steps); a change of behaviour (seed, data order, a schedule) moves them by > 1e-3.
    return got == pytest.approx(expected, rel=1e-4, abs=1e-9)
