from __future__ import annotations

from dmo.models.backends import get_backend

from dmo.evaluation import benchmarks_for, evaluate
from dmo.models.checkpoint import load_checkpoint
from dmo.training.jobs import base_spec, ensure_model


def test_expert_gains_most_on_its_own_domain(tiny_models, tiny_data):
    base, experts = tiny_models
    benchmarks = benchmarks_for(tiny_data.names, "dev")
    base_scores = evaluate(load_checkpoint(base.checkpoint_uri), tiny_data, benchmarks, backend=get_backend("mod_mllm")).scores("likelihood")
    for domain, expert in experts.items():
        scores = evaluate(load_checkpoint(expert.checkpoint_uri), tiny_data, benchmarks, backend=get_backend("mod_mllm")).scores("likelihood")
        gains = {d: scores[d] - base_scores[d] for d in scores}
        assert max(gains, key=gains.get) == domain, f"{domain} expert gains {gains}"


def test_same_expert_config_is_a_cache_hit(tiny_config, tiny_store, tiny_models, tiny_data):
    base, _ = tiny_models
    again = ensure_model(tiny_config, tiny_store, base_spec(tiny_config), data=tiny_data)
    assert again.id == base.id and again.checkpoint_sha256 == base.checkpoint_sha256


def test_experts_record_their_efficiency_settings(tiny_models):
    _, experts = tiny_models
    for expert in experts.values():
        assert expert.status == "finished"
        assert expert.efficiency["schedule"] == "prd_shifted_cosine"
        assert len(expert.efficiency["retention"]) == 4
        assert 0 < expert.flops_ratio < 1 and 0 < expert.kv_ratio < 1
        assert expert.metrics["dev"]["split"] == "dev"
        steps = [step for step, _ in expert.metrics["loss_curve"]]
        assert steps[-1] == expert.training["settings"]["steps"] and steps == sorted(steps)


def test_experts_record_the_base_s_model_fingerprint_not_its_training_record(tiny_models):
    import json
    from pathlib import Path

    from dmo.models.checkpoint import read_manifest

    base, experts = tiny_models
    manifest = read_manifest(base.checkpoint_uri)
    for expert in experts.values():
        recorded = json.loads((Path(expert.checkpoint_uri) / "dmo_training.json").read_text())["base_sha256"]
        assert recorded == manifest.model_sha256 != manifest.total_sha256
