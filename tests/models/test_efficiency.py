from __future__ import annotations

import pytest

from dmo.models import ModMLLMConfig
from dmo.models.efficiency import (
    decoder_cost,
    efficiency_vs_dense,
    forward_cost,
    layer_flops,
    probe_batch,
)


def test_layer_flops_follow_the_formula():
    # 2·n·(4d² + 3·d·d_ff) + 4·n²·d with n=10, d=4, d_ff=8
    assert layer_flops(10, 4, 8) == 2 * 10 * (4 * 16 + 3 * 4 * 8) + 4 * 100 * 4


def test_default_model_saves_flops_and_kv_with_64_vision_and_16_text_tokens():
    report = efficiency_vs_dense(ModMLLMConfig(), n_text=16, n_vis=64)
    assert report.flops_ratio < 0.7
    assert report.mod.tokens == (80, 80, 67, 55, 40, 28, 25, 25)
    assert report.kv_ratio == pytest.approx(sum(report.mod.tokens) / (8 * 80))
    assert report.dense.tokens == (80,) * 8


def test_dense_schedule_costs_exactly_the_dense_model():
    report = efficiency_vs_dense(ModMLLMConfig(mod_schedule="dense"), n_text=16, n_vis=64)
    assert report.flops_ratio == 1.0 and report.kv_ratio == 1.0
    assert all(row["flops_ratio"] == 1.0 for row in report.table())


def test_lower_retention_costs_less():
    costs = [
        forward_cost(ModMLLMConfig(mod_schedule="constant", mod_constant=rho), 16, 64).total_flops
        for rho in (0.25, 0.5, 0.75, 1.0)
    ]
    assert costs == sorted(costs) and len(set(costs)) == 4


def test_text_only_samples_save_nothing():
    cost = decoder_cost((1.0, 0.2), 8, 16, n_text=5, n_vis=0)
    assert cost.tokens == (5, 5)
    with pytest.raises(ValueError):
        decoder_cost((1.0,), 8, 16, n_text=-1, n_vis=4)


def test_probe_batch_has_the_encoded_layout_and_measure_times_it():
    config = ModMLLMConfig(
        vocab_size=64, image_size=8, patch_size=2, vision_hidden_size=16, vision_layers=1,
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    batch = probe_batch(config, batch_size=2, n_text=5)
    ids = batch["input_ids"]
    assert ids.shape == (2, 1 + 16 + 5)
    assert (ids[:, 0] == config.bos_token_id).all()
    assert ((ids == config.image_token_id).sum(1) == 16).all()
    assert batch["pixel_values"].min() >= -1 and batch["pixel_values"].max() <= 1
