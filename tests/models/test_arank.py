from __future__ import annotations

import pytest
import torch

from dmo.models import ModMLLMConfig, ModMLLMForCausalLM
from dmo.models.arank import attention_map_rank, layer_aranks, layers_to_route
from dmo.models.efficiency import probe_batch


def previous_token_map(n: int) -> torch.Tensor:
    """Each token splits attention between itself and its predecessor: strict lower part has rank n-1."""
    attn = torch.eye(n) * 0.5
    attn[1:, :-1] += torch.eye(n - 1) * 0.5
    attn[0, 0] = 1.0
    return attn


def first_token_map(n: int) -> torch.Tensor:
    """Every token attends the first token (an attention sink) and itself: rank 1 after removing the diagonal."""
    attn = torch.eye(n) * 0.3
    attn[:, 0] += 0.7
    attn[0, 0] = 1.0
    return attn


def test_previous_token_attention_is_full_rank():
    assert attention_map_rank(previous_token_map(12)[None]) == 11


def test_attention_sink_is_rank_one():
    assert attention_map_rank(first_token_map(12)[None]) == 1


def test_two_sinks_give_rank_two_and_heads_are_averaged():
    n = 10
    two_groups = torch.eye(n) * 0.2
    two_groups[1:5, 0] += 0.8
    two_groups[5:, 4] += 0.8  # tokens 5.. attend token 4
    two_groups[0, 0] = 1.0
    assert attention_map_rank(two_groups[None]) == 2
    heads = torch.stack([previous_token_map(n), first_token_map(n)])
    assert attention_map_rank(heads) == pytest.approx((n - 1 + 1) / 2)


def test_padding_rows_and_columns_do_not_change_the_rank():
    attn = first_token_map(6)
    padded = torch.zeros(8, 8)
    padded[2:, 2:] = attn
    padded[0, 0] = padded[1, 1] = 1.0  # padding queries attend themselves only
    assert attention_map_rank(padded[None]) == attention_map_rank(attn[None]) == 1


def test_relative_tolerance_drops_tiny_directions():
    attn = first_token_map(6)
    attn[3, 2] += 1e-4
    assert attention_map_rank(attn[None]) == 2
    assert attention_map_rank(attn[None], rtol=1e-2) == 1


def test_layers_to_route_picks_the_lowest_and_prefers_deeper_layers_on_ties():
    assert layers_to_route([9.0, 3.0, 7.0, 3.0, 1.0], 2) == [3, 4]
    assert layers_to_route([5.0, 5.0, 5.0], 1) == [2]
    assert layers_to_route([1.0, 2.0], 0) == []
    with pytest.raises(ValueError):
        layers_to_route([1.0], 2)


def test_layer_aranks_measures_every_layer_of_a_model():
    config = ModMLLMConfig(
        vocab_size=64, image_size=8, patch_size=2, vision_hidden_size=16, vision_layers=1,
        hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        aranks = layer_aranks(ModMLLMForCausalLM(config).eval(), probe_batch(config, 2, n_text=4))
    finally:
        torch.set_num_threads(threads)
    assert len(aranks) == 3
    kept = [4 + 1 + int(16 * r + 1e-9) for r in config.layer_retention()]
    assert all(0 < value <= n - 1 for value, n in zip(aranks, kept, strict=True))
