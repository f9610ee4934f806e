"""VideoLLM-MoD in dmo's own model (issue 21): video input and per-frame routing."""

from __future__ import annotations

import json
import math

import pytest
import torch

from dmo.models.configuration_mod_mllm import ModMLLMConfig
from dmo.models.efficiency import efficiency_vs_dense, probe_batch
from dmo.models.mod_layer import select_kept_tokens_per_frame
from dmo.models.modeling_mod_mllm import ModMLLMForCausalLM
from dmo.models.schedules import kept_per_frame, kept_vision_tokens, retention_schedule

FRAMES = 4


def _config(**fields) -> ModMLLMConfig:
    base = {"vocab_size": 64, "image_size": 16, "patch_size": 4, "vision_hidden_size": 32, "vision_layers": 1,
            "vision_heads": 2, "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": 128, "num_frames": FRAMES,
            "mod_schedule": "video_per_frame", "mod_frame_retention": 0.2}
    return ModMLLMConfig(**{**base, **fields})


def _routed_model(config: ModMLLMConfig, seed: int = 0) -> ModMLLMForCausalLM:
    torch.manual_seed(seed)
    model = ModMLLMForCausalLM(config).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            if layer.router is not None:
                layer.router.weight.normal_(0, 1.0)  # gates that differ, so the choice is not the earliest tokens
    return model


def _sharpened(model: ModMLLMForCausalLM) -> ModMLLMForCausalLM:
    """Peaked attention and logits: at initialisation every position looks alike, and a cache read at
    the wrong positions would still give the uncached tokens."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                parameter.mul_(20)
            elif name == "lm_head.weight":
                parameter.mul_(50)
    return model


def test_each_frame_keeps_its_ceiling_share_and_every_text_token():
    torch.manual_seed(0)
    B, frames, patches, keep, T = 3, 4, 16, 4, 72
    vision = torch.zeros(B, T, dtype=torch.bool)
    for row, start in enumerate((1, 3, 6)):  # rows shifted by left padding, as in a generation batch
        vision[row, start : start + frames * patches] = True
    gate = torch.randn(B, T)
    kept = select_kept_tokens_per_frame(gate, vision, frames, keep)
    assert kept.shape == (B, T - frames * patches + frames * keep)
    for row in range(B):
        positions = vision[row].nonzero().squeeze(1).view(frames, patches)
        chosen = set(kept[row].tolist())
        assert {p for p in range(T) if not vision[row, p]} <= chosen  # text and padding always kept
        for frame in positions:
            mine = [p for p in frame.tolist() if p in chosen]
            assert len(mine) == keep
            best = frame[gate[row, frame].argsort(descending=True, stable=True)[:keep]]
            assert sorted(mine) == sorted(best.tolist())  # the frame's own highest gates


@pytest.mark.parametrize("r", [0.2, 0.5, 0.07])
def test_every_routed_layer_keeps_the_ceiling_of_r_of_every_frame(r):
    config = _config(mod_frame_retention=r)
    model = _routed_model(config)
    batch = probe_batch(config, batch_size=2, n_text=5)
    assert batch["pixel_values"].shape == (2, FRAMES, 3, 16, 16)
    with torch.no_grad():
        out = model.model(batch["input_ids"], batch["pixel_values"], batch["attention_mask"], output_routing=True)
    patches = config.patches_per_frame
    vision = batch["input_ids"] == config.image_token_id
    for index, routing in enumerate(out.routing):
        per_frame = patches if index == 0 else math.ceil(r * patches)
        assert routing.kept_vision == FRAMES * per_frame == kept_vision_tokens(
            FRAMES * patches, config.layer_retention()[index], frames=FRAMES)
        for row in range(2):
            frames = vision[row].nonzero().squeeze(1).view(FRAMES, patches)
            assert [int(routing.kept_mask[row, f].sum()) for f in frames] == [per_frame] * FRAMES


def test_at_r_one_the_video_model_is_the_dense_one_and_below_it_is_not():
    batch = probe_batch(_config(), batch_size=2, n_text=5)
    dense = _routed_model(_config(mod_schedule="dense"))
    full = ModMLLMForCausalLM(_config(mod_frame_retention=1.0)).eval()
    missing, _ = full.load_state_dict(dense.state_dict(), strict=False)
    assert all(".router." in name for name in missing)  # routers for the images' PRD; zero, they pass x through
    with torch.no_grad():
        reference = dense(**batch).logits
        torch.testing.assert_close(full(**batch).logits, reference)
        routed = ModMLLMForCausalLM(_config(mod_frame_retention=0.2)).eval()
        routed.load_state_dict(dense.state_dict(), strict=False)  # zero routers: skipped tokens pass through
        assert (routed(**batch).logits - reference).abs().max() > 1e-3


def test_frames_are_encoded_apart_and_placed_in_time():
    config = _config()
    model = _routed_model(config)
    tower = model.model.vision_tower
    with torch.no_grad():
        tower.frame_embedding.normal_(0, 1.0)
        pixels = torch.rand(1, FRAMES, 3, 16, 16)
        before = tower(pixels)
        changed = pixels.clone()
        changed[0, 2] = torch.rand(3, 16, 16)
        after = tower(changed)
        same_frames = tower(pixels[:, [0, 0, 0, 0]])
    patches = config.patches_per_frame
    moved = (after - before).abs().amax(dim=2).view(FRAMES, patches).amax(dim=1)
    assert moved[2] > 1e-3 and torch.all(moved[[0, 1, 3]] == 0)  # only the changed frame's features move
    first, second = same_frames[0, :patches], same_frames[0, patches : 2 * patches]
    assert (first - second).abs().max() > 1e-3  # the same picture at another time is another token


def test_cached_generation_of_a_video_model_gives_the_uncached_tokens():
    config = _config()
    model = _sharpened(_routed_model(config))
    batch = probe_batch(config, batch_size=3, n_text=5)
    with torch.no_grad():
        cached = model.generate_greedy(batch["input_ids"], batch["pixel_values"], max_new_tokens=4, eos_token_id=-1,
                                       use_cache=True)
        uncached = model.generate_greedy(batch["input_ids"], batch["pixel_values"], max_new_tokens=4, eos_token_id=-1,
                                         use_cache=False)
    assert torch.equal(cached, uncached) and len(set(cached.flatten().tolist())) > 2


def test_flops_and_kv_accounting_count_each_frame_s_kept_tokens():
    config = _config(mod_frame_retention=0.2)
    report = efficiency_vs_dense(config, n_text=10, n_vis=config.num_image_tokens)
    patches = config.patches_per_frame
    assert [layer.kept_vision for layer in report.mod.layers] == [FRAMES * patches] + [FRAMES * kept_per_frame(
        patches, 0.2)] * 3
    assert report.flops_ratio < 0.6 and report.kv_ratio < 0.6
    assert config.mod_settings()["frames"] == FRAMES and config.mod_settings()["per_frame"] is True
    assert "frames" not in _config(num_frames=1, mod_schedule="prd_shifted_cosine").mod_settings()


def test_images_in_a_video_model_route_by_prd_over_the_whole_sample_and_videos_by_frame():
    """VideoLLM-MoD's per-frame routing composes with p-MoD's PRD: one model, each sample by its kind."""
    config = _config(num_hidden_layers=6, mod_frame_retention=0.2)
    model = _routed_model(config)
    batch = probe_batch(config, batch_size=2, n_text=5)
    n_vis, patches = config.num_image_tokens, config.patches_per_frame
    prd = config.image_layer_retention()
    assert prd == tuple(retention_schedule("prd_shifted_cosine", 6)) and min(prd) < 1.0
    with torch.no_grad():
        images = model.model(batch["input_ids"], batch["pixel_values"], batch["attention_mask"], output_routing=True,
                             video_rows=torch.tensor([False, False])).routing
        videos = model.model(batch["input_ids"], batch["pixel_values"], batch["attention_mask"], output_routing=True,
                             video_rows=torch.tensor([True, True])).routing
    vision = batch["input_ids"] == config.image_token_id
    for index, (image, video) in enumerate(zip(images, videos)):
        assert image.kept_vision == kept_vision_tokens(n_vis, prd[index])  # ⌊ρ_l·n⌋ of the whole sample
        assert [int(image.kept_mask[row][vision[row]].sum()) for row in range(2)] == [image.kept_vision] * 2
        per_frame = patches if index == 0 else math.ceil(0.2 * patches)
        assert video.kept_vision == FRAMES * per_frame
    assert [r.kept_vision for r in images] != [r.kept_vision for r in videos]
    with pytest.raises(ValueError, match="1 videos and 1 images"):
        model(**batch, video_rows=torch.tensor([True, False]))


def test_a_video_model_s_splits_name_their_videos_and_batches_run_each_kind_apart(tmp_path):
    import numpy as np

    from dmo.data.encoding import EncodedSplit, training_batch
    from dmo.data.sample import Sample
    from dmo.data.tokenizer import train_tokenizer
    from dmo.data.encoding import encode_split
    from dmo.training.loop import batch_loss

    rng = np.random.default_rng(0)
    clips = [Sample(f"v{i}", "motion", rng.integers(0, 256, (FRAMES, 16, 16, 3), dtype=np.uint8), "which way?", "up")
             for i in range(3)]
    stills = [Sample(f"i{i}", "general", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "what shape?", "circle")
              for i in range(3)]
    tokenizer = train_tokenizer(["which way up what shape circle"] * 8, vocab_size=64)
    config = _config(vocab_size=len(tokenizer))
    parts = [encode_split(s, tokenizer, config.num_image_tokens, num_frames=FRAMES, image_size=16)
             for s in (stills, clips)]
    split = EncodedSplit.concat(parts)
    assert split.images.videos == (False,) * 3 + (True,) * 3
    assert split.images.groups([0, 3, 1, 4]) == [[0, 1], [3, 4]]
    batch = training_batch(split, [0, 3, 1, 4], tokenizer.pad_token_id)
    assert batch["video_rows"].tolist() == [False, True, False, True]
    model = _routed_model(ModMLLMConfig(**{**config.to_dict(), "image_token_id": tokenizer.convert_tokens_to_ids(
        "<image>"), "pad_token_id": tokenizer.pad_token_id}))
    with pytest.raises(ValueError, match="2 videos and 2 images"):
        model(**batch)
    loss = batch_loss(model, split, [0, 3, 1, 4], tokenizer.pad_token_id, torch.device("cpu"))
    groups = [training_batch(split, g, tokenizer.pad_token_id) for g in ([0, 1], [3, 4])]
    tokens = [int((g["labels"][:, 1:] != -100).sum()) for g in groups]
    assert tokens[0] != tokens[1]  # "circle" and "up" differ in length: the weights matter
    expected = sum(model(**g).loss * n for g, n in zip(groups, tokens)) / sum(tokens)
    torch.testing.assert_close(loss, expected)


def test_cached_generation_of_images_in_a_video_model_gives_the_uncached_tokens():
    config = _config(num_hidden_layers=6)
    model = _sharpened(_routed_model(config))
    batch = probe_batch(config, batch_size=3, n_text=5)
    images = torch.zeros(3, dtype=torch.bool)
    with torch.no_grad():
        cached = model.generate_greedy(batch["input_ids"], batch["pixel_values"], max_new_tokens=4, eos_token_id=-1,
                                       use_cache=True, video_rows=images)
        uncached = model.generate_greedy(batch["input_ids"], batch["pixel_values"], max_new_tokens=4, eos_token_id=-1,
                                         use_cache=False, video_rows=images)
    assert torch.equal(cached, uncached) and len(set(cached.flatten().tolist())) > 2


def test_model_info_of_the_shipped_video_config_shows_frames_and_the_images_prd(dmo_cli):
    from pathlib import Path

    config = Path(__file__).resolve().parents[2] / "configs" / "video.yaml"
    result = dmo_cli("model", "info", "-c", config, "--json")
    assert result.code == 0, result.err
    payload = json.loads(result.out)
    assert payload["frames"] == 4 and payload["vision_tokens_per_frame"] == 16
    assert [row["kept_per_frame"] for row in payload["layers"]] == [16] + [kept_per_frame(16, 0.2)] * 7
    assert payload["flops_ratio"] < payload["images"]["flops_ratio"] < 1.0  # images keep PRD's larger share
    assert payload["images"]["kept_vision"] == [kept_vision_tokens(64, rho) for rho in payload["images"]["retention"]]
    assert payload["mod"]["image_retention"] == payload["images"]["retention"]


@pytest.mark.parametrize("videos", [True, False])
def test_answer_likelihoods_from_the_prefill_equal_a_forward_of_prompt_and_answer(videos):
    config = _config(num_hidden_layers=6)
    model = _routed_model(config)
    batch = probe_batch(config, batch_size=3, n_text=5)
    rows = torch.full((3,), videos)
    answers = torch.randint(5, config.vocab_size, (3, 3))
    mask = torch.tensor([[True, True, True], [True, False, False], [True, True, False]])
    with torch.no_grad():
        tokens, likelihood = model.generate_greedy(batch["input_ids"], batch["pixel_values"], max_new_tokens=3,
                                                   eos_token_id=-1, video_rows=rows, answers=answers, answer_mask=mask)
        alone = model.generate_greedy(batch["input_ids"], batch["pixel_values"], max_new_tokens=3, eos_token_id=-1,
                                      video_rows=rows)
        whole = torch.cat([batch["input_ids"], answers], dim=1)
        logits = model(whole, batch["pixel_values"], video_rows=rows).logits[:, batch["input_ids"].shape[1] - 1 : -1]
    logprobs = torch.log_softmax(logits.float(), -1).gather(-1, answers[..., None]).squeeze(-1)
    expected = torch.exp((logprobs * mask).sum(1) / mask.sum(1))
    torch.testing.assert_close(likelihood, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(tokens, alone)
