from __future__ import annotations

import re

import pytest
import torch

from dmo.models import ModMLLMConfig, ModMLLMForCausalLM
from dmo.models.layers import LayerCache, causal_padding_mask, rotary_cos_sin
from dmo.models.mod_layer import DecoderInputs, ModDecoderLayer, select_kept_tokens
from dmo.models.schedules import kept_vision_tokens

IMAGE, PAD, BOS, EOS = 3, 0, 1, 2


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Tiny matmuls on 2 shared cores: a second OpenMP thread only adds spin-waiting (50x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**overrides) -> ModMLLMConfig:
    settings = dict(
        vocab_size=64, image_size=8, patch_size=2, vision_hidden_size=16, vision_layers=1, vision_heads=2,
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, image_token_id=IMAGE, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS,
    )  # fmt: skip
    settings.update(overrides)
    return ModMLLMConfig(**settings)


def make_batch(config: ModMLLMConfig, batch_size: int = 3, n_text: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    text = torch.randint(4, config.vocab_size, (batch_size, n_text), generator=generator)
    image = torch.full((batch_size, config.num_image_tokens), IMAGE)
    bos = torch.full((batch_size, 1), BOS)
    input_ids = torch.cat([bos, image, text], dim=1)  # [BOS] <image>×n text
    pixel_values = torch.rand(batch_size, 3, config.image_size, config.image_size, generator=generator) * 2 - 1
    return {"input_ids": input_ids, "pixel_values": pixel_values}


def model_with(config: ModMLLMConfig, source: ModMLLMForCausalLM | None = None, seed: int = 0) -> ModMLLMForCausalLM:
    torch.manual_seed(seed)
    model = ModMLLMForCausalLM(config).eval()
    if source is not None:  # share every weight the two models have in common
        missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
        assert not unexpected and all(".router." in name for name in missing)
    return model


def randomise_routers(model: ModMLLMForCausalLM, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.model.layers:
            if layer.router is not None:
                layer.router.weight.copy_(torch.randn(layer.router.weight.shape, generator=generator))
                layer.router.bias.normal_(generator=generator)


# --------------------------------------------------------------------------- structure


def test_parameter_names_follow_the_documented_layout():
    config = tiny_config(mod_schedule="explicit", mod_retention=[1.0, 0.5, 1.0, 0.25])
    names = {name for name, _ in ModMLLMForCausalLM(config).named_parameters()}
    documented = re.compile(
        r"model\.vision_tower\..+|model\.projector\..+|model\.embed_tokens\.weight|model\.norm\.weight|lm_head\.weight"
        r"|model\.layers\.\d+\.(input_layernorm|post_attention_layernorm)\.weight"
        r"|model\.layers\.\d+\.self_attn\.[qkvo]_proj\.weight|model\.layers\.\d+\.mlp\.(gate|up|down)_proj\.weight"
        r"|model\.layers\.\d+\.router\.(weight|bias)"
    )
    assert all(documented.fullmatch(name) for name in names), sorted(n for n in names if not documented.fullmatch(n))
    routers = sorted(name for name in names if ".router." in name)
    assert routers == [f"model.layers.{i}.router.{p}" for i in (1, 3) for p in ("bias", "weight")]


def test_routers_start_at_zero_and_other_weights_do_not():
    model = ModMLLMForCausalLM(tiny_config())
    for name, parameter in model.named_parameters():
        if ".router." in name:
            assert torch.count_nonzero(parameter) == 0, name
    assert float(model.model.layers[0].self_attn.q_proj.weight.detach().std()) == pytest.approx(0.02, rel=0.2)


# --------------------------------------------------------------------------- MoD equals dense where it should


def test_routed_layer_keeping_every_token_equals_the_dense_layer():
    config = tiny_config()
    torch.manual_seed(0)
    dense = ModDecoderLayer(config, retention=1.0)
    routed = ModDecoderLayer(config, retention=1.0, routed=True)
    routed.load_state_dict(dense.state_dict(), strict=False)
    torch.nn.init.zeros_(routed.router.weight)
    torch.nn.init.zeros_(routed.router.bias)
    batch, T = 2, 1 + config.num_image_tokens + 5
    x = torch.randn(batch, T, config.hidden_size)
    vision = torch.zeros(batch, T, dtype=torch.bool)
    vision[:, 1 : 1 + config.num_image_tokens] = True
    valid = torch.ones(batch, T, dtype=torch.bool)
    valid[1, :2] = False  # left padding in the second row
    positions = (valid.long().cumsum(1) - 1).clamp(min=0)
    cos, sin = rotary_cos_sin(positions, config.head_dim, config.rope_theta, x.dtype)
    inputs = DecoderInputs(vision, valid, cos, sin, causal_padding_mask(valid), config.num_image_tokens)
    y_dense, _, _ = dense(x, inputs)
    y_routed, _, routing = routed(x, inputs, output_routing=True)
    assert routing.kept_mask.all()
    torch.testing.assert_close(y_routed, y_dense, rtol=0, atol=1e-6)


def test_dense_schedule_equals_an_all_ones_schedule():
    dense = model_with(tiny_config(mod_schedule="dense"))
    ones = model_with(tiny_config(mod_schedule="explicit", mod_retention=[1.0] * 4), source=dense)
    batch = make_batch(dense.config)
    assert torch.equal(dense(**batch).logits, ones(**batch).logits)


def test_zero_router_mod_differs_from_dense_only_from_the_first_routed_layer():
    dense = model_with(tiny_config(mod_schedule="dense"))
    mod = model_with(tiny_config(mod_schedule="explicit", mod_retention=[1.0, 1.0, 0.5, 0.5]), source=dense)
    batch = make_batch(dense.config)
    h_dense = dense(**batch, output_hidden_states=True).hidden_states
    h_mod = mod(**batch, output_hidden_states=True).hidden_states
    for layer in range(3):  # embeddings, layer 0, layer 1
        torch.testing.assert_close(h_mod[layer], h_dense[layer], rtol=0, atol=1e-6)
    assert not torch.allclose(h_mod[3], h_dense[3], atol=1e-4)


# --------------------------------------------------------------------------- routing


def test_select_kept_tokens_keeps_text_and_top_gates_in_order():
    gate = torch.tensor([[9.0, 0.1, 0.9, 0.5, 0.7, 0.0], [0.0, 0.8, 0.8, 0.8, 0.2, 5.0]])
    vision = torch.tensor([[False, True, True, True, True, False], [False, True, True, True, True, False]])
    kept = select_kept_tokens(gate, vision, num_vision=4, num_keep=2)
    assert kept.tolist() == [[0, 2, 4, 5], [0, 1, 2, 5]]  # ties go to the earliest position


def test_router_keeps_exactly_k_vision_tokens_and_every_text_token():
    config = tiny_config(mod_schedule="explicit", mod_retention=[1.0, 0.5, 0.3, 0.1])
    model = model_with(config)
    randomise_routers(model)
    batch = make_batch(config, batch_size=4)
    vision = batch["input_ids"] == IMAGE
    routing = model(**batch, output_routing=True).routing
    for rho, layer in zip(config.layer_retention(), routing, strict=True):
        k = kept_vision_tokens(config.num_image_tokens, rho)
        assert layer.kept_vision == k
        assert ((layer.kept_mask & vision).sum(dim=1) == k).all()
        assert layer.kept_mask[~vision].all()
        if layer.gate is not None:
            for row in range(4):
                kept_gates = layer.gate[row][layer.kept_mask[row] & vision[row]]
                skipped_gates = layer.gate[row][~layer.kept_mask[row] & vision[row]]
                assert kept_gates.min() >= skipped_gates.max()
            assert layer.mean_gate == pytest.approx(float(layer.gate[vision].mean()))


def test_skipped_vision_tokens_become_gate_times_input():
    config = tiny_config(mod_schedule="explicit", mod_retention=[1.0, 0.25, 1.0, 1.0])
    model = model_with(config)
    randomise_routers(model)
    out = model(**make_batch(config), output_routing=True, output_hidden_states=True)
    routing = out.routing[1]
    x, y = out.hidden_states[1], out.hidden_states[2]  # input and output of layer 1
    skipped = ~routing.kept_mask
    assert skipped.any()
    torch.testing.assert_close(y[skipped], (routing.gate[..., None] * x)[skipped])
    assert not torch.allclose(routing.gate[skipped], torch.ones(1))  # the router is not a no-op here


def test_router_gets_gradient_from_skipped_tokens_alone():
    config = tiny_config(mod_schedule="explicit", mod_retention=[1.0, 0.25, 1.0, 1.0])
    model = model_with(config).train()
    randomise_routers(model)
    out = model(**make_batch(config), output_routing=True, output_hidden_states=True)
    skipped = ~out.routing[1].kept_mask
    out.hidden_states[2][skipped].pow(2).sum().backward()  # only tokens layer 1 skipped
    router = model.model.layers[1].router
    assert router.weight.grad is not None and router.weight.grad.abs().sum() > 0
    assert router.bias.grad.abs() > 0


def test_loss_is_next_token_cross_entropy_on_labelled_positions():
    config = tiny_config()
    model = model_with(config)
    batch = make_batch(config)
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, -3:] = batch["input_ids"][:, -3:]
    out = model(**batch, labels=labels)
    expected = torch.nn.functional.cross_entropy(out.logits[:, -4:-1].reshape(-1, config.vocab_size), labels[:, -3:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)


def test_attention_maps_cover_kept_tokens_only():
    config = tiny_config(mod_schedule="explicit", mod_retention=[1.0, 0.5, 1.0, 0.25])
    model = model_with(config)
    batch = make_batch(config)
    T = batch["input_ids"].shape[1]
    attentions = model(**batch, output_attentions=True).attentions
    n_text = T - config.num_image_tokens
    assert [a.shape[-1] for a in attentions] == [T, n_text + 8, T, n_text + 4]
    assert all(torch.allclose(a.sum(-1), torch.ones(1)) for a in attentions)
    assert all(torch.equal(a.triu(1), torch.zeros_like(a)) for a in attentions)  # causal


def test_wrong_number_of_image_tokens_is_refused():
    config = tiny_config()
    batch = make_batch(config)
    batch["input_ids"][0, 1] = 10
    with pytest.raises(ValueError, match="exactly 16 <image> tokens"):
        model_with(config)(**batch)


# --------------------------------------------------------------------------- generation


def left_pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = row
        mask[i, width - len(row) :] = 1
    return ids, mask


def test_left_padded_batch_generates_what_each_sample_generates_alone():
    config = tiny_config()
    model = model_with(config)
    batch = make_batch(config, batch_size=3, n_text=8)
    rows = [batch["input_ids"][0], batch["input_ids"][1, :-3], batch["input_ids"][2, :-5]]
    ids, mask = left_pad(rows)
    together = model.generate_greedy(ids, batch["pixel_values"], mask, max_new_tokens=5, eos_token_id=-1)
    assert together.shape == (3, 5)
    for i, row in enumerate(rows):
        alone = model.generate_greedy(row[None], batch["pixel_values"][i : i + 1], None, max_new_tokens=5, eos_token_id=-1)
        assert torch.equal(together[i], alone[0])
    padded_logits = model(ids, batch["pixel_values"], mask).logits[2, -1]
    alone_logits = model(rows[2][None], batch["pixel_values"][2:3]).logits[0, -1]
    torch.testing.assert_close(padded_logits, alone_logits, rtol=1e-4, atol=1e-5)


def test_generation_stops_at_eos_and_pads_finished_rows():
    config = tiny_config()
    model = model_with(config)
    batch = make_batch(config, batch_size=4)
    reference = model.generate_greedy(batch["input_ids"], batch["pixel_values"], max_new_tokens=6, eos_token_id=-1)
    eos = int(reference[0, 1])  # row 0 emits this token second
    out = model.generate_greedy(batch["input_ids"], batch["pixel_values"], max_new_tokens=6, eos_token_id=eos)
    ends = []
    for row in range(4):
        hits = (reference[row] == eos).nonzero()
        end = int(hits[0]) + 1 if len(hits) else 6
        ends.append(end)
        assert torch.equal(out[row, :end], reference[row, :end])
        assert (out[row, end:] == PAD).all()
    assert out.shape[1] == max(ends)
    assert ends[0] <= 2


def test_generation_respects_max_new_tokens_and_needs_left_padding():
    config = tiny_config()
    model = model_with(config)
    batch = make_batch(config)
    assert model.generate_greedy(batch["input_ids"], batch["pixel_values"], max_new_tokens=3, eos_token_id=-1).shape == (3, 3)
    right_padded = torch.ones_like(batch["input_ids"])
    right_padded[0, -1] = 0
    with pytest.raises(ValueError, match="left-padded"):
        model.generate_greedy(batch["input_ids"], batch["pixel_values"], right_padded, max_new_tokens=2)


def test_generation_never_emits_the_image_placeholder():
    config = tiny_config(image_token_id=0, pad_token_id=5)
    model = model_with(config)
    with torch.no_grad():
        model.model.norm.weight.zero_()  # every logit 0: argmax would be id 0, the <image> token
    batch = make_batch(config)
    batch["input_ids"][batch["input_ids"] == IMAGE] = 0
    out = model.generate_greedy(batch["input_ids"], batch["pixel_values"], max_new_tokens=3, eos_token_id=-1)
    assert (out == 1).all()


@pytest.mark.parametrize("schedule", ["dense", "prd_shifted_cosine"])
def test_cached_generation_gives_the_tokens_and_states_of_rerunning_the_prefix(schedule):
    """The KV cache holds, per layer, only the tokens that layer processed; each new token's hidden
    state equals the uncached forward's last row, so greedy tokens are the same (ties: lowest id)."""
    config = tiny_config(mod_schedule=schedule)
    model = model_with(config)
    randomise_routers(model)  # routing depends on the content, so a wrong cache would pick other tokens
    with torch.no_grad():
        for module in model.modules():  # sharper logits than initialisation's, so tokens differ by step
            if isinstance(module, torch.nn.Linear) and module.out_features == config.vocab_size:
                module.weight.mul_(50)
        for name, parameter in model.named_parameters():  # peaked attention: positions matter
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                parameter.mul_(20)
    batch = make_batch(config, batch_size=3, n_text=8)
    rows = [batch["input_ids"][0], batch["input_ids"][1, :-3], batch["input_ids"][2, :-5]]
    ids, mask = left_pad(rows)
    cached = model.generate_greedy(ids, batch["pixel_values"], mask, max_new_tokens=12, eos_token_id=-1)
    rerun = model.generate_greedy(ids, batch["pixel_values"], mask, max_new_tokens=12, eos_token_id=-1,
                                  use_cache=False)
    assert torch.equal(cached, rerun) and len(set(cached.flatten().tolist())) > 3
    with torch.no_grad():  # the states themselves, not only their argmax
        caches = [LayerCache() for _ in model.model.layers]
        model.model(ids, batch["pixel_values"], mask, caches=caches)
        if schedule != "dense":
            assert caches[-1].keys.shape[2] < caches[0].keys.shape[2]  # routed layers cache fewer tokens
        step = model.model.decode(cached[:, 0], mask.sum(1), caches)[:, 0]
        full = model.model(torch.cat([ids, cached[:, :1]], 1), batch["pixel_values"],
                           torch.cat([mask, torch.ones_like(mask[:, :1])], 1)).last_hidden_state[:, -1]
    torch.testing.assert_close(step, full, rtol=1e-5, atol=1e-5)
