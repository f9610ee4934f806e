"""Answer likelihood from the generation's own prefill (issue 20): the same numbers as a teacher-forced
forward of prompt + answer, the same greedy tokens, one vision tower and prompt pass instead of two."""

from __future__ import annotations

import pytest
import torch

from dmo.evaluation.scoring import _generate, _generate_scored, _group_likelihoods
from dmo.models.backends import get_backend


def _random_model(config, data, seed: int = 0):
    backend = get_backend("mod_mllm")
    model = backend.initial_model(config, data.encoder, None, seed=seed).eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "router" in name:  # gates that differ: routed layers choose, not just take the first tokens
                parameter.normal_(0, 1.0)
            elif name.endswith(("q_proj.weight", "k_proj.weight")) or name == "lm_head.weight":
                # Peaked attention and logits: at random init every position looks alike, and an answer
                # continued at the wrong positions would score the same.
                parameter.mul_(20)
    return backend, model


@pytest.mark.parametrize("domain", ["general", "counting"])
def test_prefill_likelihoods_equal_a_teacher_forced_forward_and_tokens_are_unchanged(tiny_config, tiny_data, domain):
    backend, model = _random_model(tiny_config, tiny_data)
    split = tiny_data.encoded(domain, "dev")
    indices = list(range(12))
    assert len({len(split.prompts[i]) for i in indices} | {len(split.answers[i]) for i in indices}) > 2  # padding
    pad, eos = tiny_data.pad_id, tiny_data.eos_id
    with torch.no_grad():
        pairs = _generate_scored(model, backend, split, indices, pad, eos, 4)
        reference = _group_likelihoods(model, split, indices, pad)
        tokens = _generate(model, backend, split, indices, pad, eos, 4)
    assert [row for row, _ in pairs] == tokens
    log_reference = torch.tensor(reference).log()
    torch.testing.assert_close(torch.tensor([v for _, v in pairs]).log(), log_reference, atol=1e-4, rtol=1e-5)
    assert float(log_reference.max() - log_reference.min()) > 1.0  # rows differ by more than a nat


def test_a_backend_without_prefill_scoring_falls_back_to_the_teacher_forced_forward(tiny_config, tiny_data):
    backend, model = _random_model(tiny_config, tiny_data)

    class Plain(type(backend)):
        def generate_scored(self, *args, **kwargs):
            return None

    split = tiny_data.encoded("general", "dev")
    with torch.no_grad():
        pairs = _generate_scored(model, Plain(), split, [0, 1, 2], tiny_data.pad_id, tiny_data.eos_id, 3)
        reference = _group_likelihoods(model, split, [0, 1, 2], tiny_data.pad_id)
    assert [v for _, v in pairs] == reference
