"""Tiny MoD MLLMs and their perturbed experts, built from a config (nothing downloaded)."""

from __future__ import annotations

import pytest
import torch

from dmo.models import ModMLLMConfig, ModMLLMForCausalLM


def tiny_config(**overrides) -> ModMLLMConfig:
    settings = dict(
        vocab_size=64,
        image_size=8,
        patch_size=4,
        vision_hidden_size=16,
        vision_layers=1,
        vision_heads=2,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
    )
    settings.update(overrides)
    return ModMLLMConfig(**settings)


def perturbed(
    state_dict: dict[str, torch.Tensor], seed: int, scale: float = 0.05
) -> dict[str, torch.Tensor]:
    """An "expert": every float tensor moved by seeded noise (vision tower too: tests exclusion)."""
    generator = torch.Generator().manual_seed(seed)
    moved = {}
    for name, tensor in state_dict.items():
        if tensor.is_floating_point():
            tensor = tensor + scale * torch.randn(tensor.shape, generator=generator)
        moved[name] = tensor
    return moved


@pytest.fixture(scope="session")
def make_config():
    """``make_config(**overrides)`` -> a tiny ModMLLMConfig (a fixture: no conftest imports)."""
    return tiny_config


@pytest.fixture(scope="session")
def perturb():
    """``perturb(state_dict, seed, scale)`` -> a perturbed copy (an "expert")."""
    return perturbed


@pytest.fixture(scope="module")
def tiny_model() -> ModMLLMForCausalLM:
    torch.manual_seed(0)
    return ModMLLMForCausalLM(tiny_config()).eval()


@pytest.fixture(scope="module")
def base_sd(tiny_model) -> dict[str, torch.Tensor]:
    # Routers start at zero; give every tensor some value so task vectors are not trivially aligned.
    state = {k: v.detach().clone() for k, v in tiny_model.state_dict().items()}
    return perturbed(state, seed=100, scale=0.02)


@pytest.fixture(scope="module")
def expert_sds(base_sd) -> list[dict[str, torch.Tensor]]:
    return [perturbed(base_sd, seed=i) for i in range(3)]
