"""Qwen2-VL's own video input in the hf backend, without torchvision (tiny random checkpoint made here).

A clip's patches are rebuilt from the image processor's frame patches (dmo.models.qwen2_vl_video);
these tests hold the rebuild to an independent patchify of the normalised frames, place the clip
behind ``<|video_pad|>`` tokens typed 2 for M-RoPE, and run routed forwards and generation on
batches that mix images and videos.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dmo.data.sample import Sample
from dmo.errors import DataError
from dmo.models.backends import get_backend
from dmo.models.backends.hf import HfEncoder
from dmo.models.qwen2_vl_video import clip_patches
from hf_support import hf_project, tiny_llava, tiny_qwen2_vl

REPO = Path(__file__).resolve().parents[2]
rng = np.random.default_rng(0)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory) -> Path:
    return tiny_qwen2_vl(tmp_path_factory.mktemp("hf") / "qwen2_vl")


def _clip(frames: int, uid: str = "clip") -> Sample:
    return Sample(uid, "video_motion", rng.integers(0, 256, (frames, 32, 32, 3), dtype=np.uint8), "which way?", "left")


def _image(uid: str = "still") -> Sample:
    return Sample(uid, "general", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "what shape?", "circle")


def _reference_video_patches(frames: np.ndarray, processor) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Qwen2VLVideoProcessor's patchify (transformers' view + permute), on frames normalised by hand."""
    x = frames.astype(np.float32) / 255.0
    x = (x - np.asarray(processor.image_mean, np.float32)) / np.asarray(processor.image_std, np.float32)
    x = x.transpose(0, 3, 1, 2)  # (F, C, H, W)
    tp, p, m = processor.temporal_patch_size, processor.patch_size, processor.merge_size
    if pad := -len(x) % tp:
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
    t, c, h, w = len(x) // tp, x.shape[1], x.shape[2] // p, x.shape[3] // p
    patches = x.reshape(t, tp, c, h // m, m, p, w // m, m, p).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return patches.reshape(t * h * w, c * tp * p * p), (t, h, w)


@pytest.mark.parametrize("frames", [2, 4, 5])
def test_clip_patches_equal_a_direct_patchify_of_the_normalised_frames(qwen, frames):
    encoder = HfEncoder(qwen, image_size=32)
    clip = _clip(frames)
    out = encoder._images(clip)
    expected, grid = _reference_video_patches(clip.frames, encoder.processor)
    assert tuple(out["video_grid_thw"][0].tolist()) == grid
    np.testing.assert_allclose(out["pixel_values_videos"].numpy(), expected, atol=1e-5)


def test_a_still_clip_is_the_image_processor_s_own_patches_of_its_frame(qwen):
    encoder = HfEncoder(qwen, image_size=32)
    image = _image()
    still = Sample("still-clip", "general", np.stack([image.image] * 2), image.question, image.answer)
    video = encoder._images(still)["pixel_values_videos"]
    assert torch.equal(video, encoder._images(image)["pixel_values"].float())
    # and two different frames are not (the rebuild keeps time)
    moving = encoder._images(_clip(2))["pixel_values_videos"]
    one = moving.view(moving.shape[0], 3, 2, -1)
    assert not torch.equal(one[:, :, 0], one[:, :, 1])


def test_clip_patches_refuse_a_patch_that_does_not_split_into_time_steps():
    with pytest.raises(ValueError, match="does not split"):
        clip_patches(np.zeros((2, 4, 3 * 2 * 4 + 1), np.float32), 2)


def test_a_video_sits_behind_video_tokens_typed_two_and_mixes_with_images_in_one_batch(qwen):
    from dmo.data.encoding import training_batch

    encoder = HfEncoder(qwen, image_size=32)
    split = encoder.encode([_clip(4, "a"), _image("b"), _clip(4, "c")])
    video_tokens = [int((torch.tensor(p) == encoder.video_token_id).sum()) for p in split.prompts]
    assert video_tokens == [2 * 4 * 4 // 4, 0, 2 * 4 * 4 // 4]  # grid (2, 4, 4) over merge 2×2
    batch = training_batch(split, [0, 1, 2], encoder.pad_id)
    assert batch["pixel_values_videos"].shape[0] == 2 * 32 and batch["video_grid_thw"].tolist() == [[2, 4, 4]] * 2
    assert batch["pixel_values"].shape[0] == 16 and batch["image_grid_thw"].tolist() == [[1, 4, 4]]
    types = batch["mm_token_type_ids"]
    assert torch.equal(types == 2, batch["input_ids"] == encoder.video_token_id)
    assert torch.equal(types == 1, batch["input_ids"] == encoder.image_token_id)
    assert split.images.groups([0, 1, 2]) == [[0, 2], [1]]

    model = get_backend("hf").load(qwen)  # unrouted: reads a mixed batch in one forward
    batch.pop("labels")
    with torch.no_grad():
        together = model(**batch).logits
        for row in range(3):
            alone = training_batch(split, [row], encoder.pad_id)
            alone.pop("labels")
            width = alone["input_ids"].shape[1]
            torch.testing.assert_close(together[row, :width], model(**alone).logits[0], atol=1e-4, rtol=1e-4)


def test_a_mixed_batch_s_loss_is_its_groups_losses_weighted_by_answer_tokens(qwen, tmp_path):
    from dmo.config import parse_config
    from dmo.data.encoding import training_batch
    from dmo.training.loop import batch_loss

    encoder = HfEncoder(qwen, image_size=32)
    samples = [_clip(4, "a"), _image("b"), _clip(2, "c"), _image("d")]
    samples[1] = Sample("b", "general", samples[1].image, "what shape?", "a long answer of many tokens")
    split = encoder.encode(samples)
    dense = get_backend("hf").load(qwen)
    with torch.no_grad():
        whole = dense(**training_batch(split, [0, 1, 2, 3], encoder.pad_id)).loss
        grouped = batch_loss(dense, split, [0, 1, 2, 3], encoder.pad_id, torch.device("cpu"))
    torch.testing.assert_close(grouped, whole, atol=1e-5, rtol=1e-5)
    # A routed model cannot take the mixed batch in one forward; grouped, it trains on it.
    config = parse_config(hf_project((REPO / "configs" / "tiny.yaml").read_text(), qwen, tmp_path), source="hf.yaml")
    routed = get_backend("hf").initial_model(config, encoder, None, seed=0)
    with pytest.raises(ValueError, match="same number of vision tokens"):
        routed(**training_batch(split, [0, 1, 2, 3], encoder.pad_id))
    loss = batch_loss(routed, split, [0, 1, 2, 3], encoder.pad_id, torch.device("cpu"))
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None for n, p in routed.named_parameters() if "router" in n)


def test_routed_layers_skip_video_tokens_as_vision_and_keep_every_text_token(qwen, tmp_path):
    from dmo.config import parse_config
    from dmo.data.encoding import training_batch
    from dmo.models.hf_routing import routing_of

    config = parse_config(hf_project((REPO / "configs" / "tiny.yaml").read_text(), qwen, tmp_path), source="hf.yaml")
    encoder = HfEncoder(qwen, image_size=32)
    split = encoder.encode([_clip(4, "a"), _clip(4, "b")])
    batch = training_batch(split, [0, 1], encoder.pad_id)
    batch.pop("labels")
    model = get_backend("hf").initial_model(config, encoder, None, seed=0)
    with torch.no_grad():
        routing = routing_of(model, lambda: model(**batch))
    vision = batch["input_ids"] == encoder.video_token_id
    n_vis = int(vision[0].sum())
    for layer, rho in zip(routing, [0.5, 0.25]):  # hf_project's schedule: [1.0, 0.5, 0.25]
        assert layer.num_vision == n_vis and layer.kept_vision == int(n_vis * rho)
        assert bool(layer.kept_mask[~vision].all())
        assert torch.equal(layer.kept_mask[vision].view(2, -1).sum(1), torch.full((2,), int(n_vis * rho)))


def test_generation_on_clips_is_the_same_with_and_without_the_cache(qwen, tmp_path):
    from dmo.config import parse_config
    from dmo.data.encoding import prompt_batch

    config = parse_config(hf_project((REPO / "configs" / "tiny.yaml").read_text(), qwen, tmp_path), source="hf.yaml")
    encoder = HfEncoder(qwen, image_size=32)
    longer = _clip(4, "b")
    split = encoder.encode([_clip(4, "a"), Sample("b", longer.domain, longer.image, "which way did the dot go?", "up")])
    batch = prompt_batch(split, [0, 1], encoder.pad_id)
    assert bool((batch["attention_mask"] == 0).any())  # left-padded
    backend = get_backend("hf")
    model = backend.initial_model(config, encoder, None, seed=0)
    for parameter in model.parameters():  # a random model that does not stop at once
        parameter.data.add_(torch.randn_like(parameter) * 0.02)
    cached = backend.generate(model, batch, max_new_tokens=6, eos_id=encoder.eos_id, pad_id=encoder.pad_id)
    with torch.no_grad():
        plain = model.generate(**batch, max_new_tokens=6, do_sample=False, use_cache=False, eos_token_id=encoder.eos_id,
                               pad_token_id=encoder.pad_id, suppress_tokens=[encoder.image_token_id,
                                                                             encoder.video_token_id])
    assert torch.equal(cached, plain[:, batch["input_ids"].shape[1]:])
    assert not bool((cached == encoder.video_token_id).any())


def test_llava_refuses_a_video_sample_by_name(tmp_path):
    encoder = HfEncoder(tiny_llava(tmp_path / "llava"), image_size=32)
    with pytest.raises(DataError, match="'clip-7' is a video; LlavaForConditionalGeneration reads images only"):
        encoder.encode([_image(), _clip(4, "clip-7")])


def test_a_qwen2_vl_mixture_of_an_image_and_a_video_domain_trains_and_scores_both(qwen, tmp_path):
    """Through the user path: a routed mixture model whose batches hold images and clips together."""
    import yaml

    from dmo.config import parse_config
    from dmo.data.encoding import EncodedSplit
    from dmo.data.prepared import prepare_data
    from dmo.evaluation.benchmarks import search_benchmarks
    from dmo.evaluation.scoring import _generate, evaluate
    from dmo.mixture import Mixture
    from dmo.training.jobs import base_spec, ensure_model, mixture_spec
    from storage import Store

    project = yaml.safe_load(hf_project((REPO / "configs" / "tiny.yaml").read_text(), qwen, tmp_path))
    project["domains"] = [
        {"name": "general", "source": {"kind": "synthetic", "generator": "general"},
         "sizes": {"train": 32, "dev": 8, "test": 8}},
        {"name": "motion", "source": {"kind": "synthetic", "generator": "video_motion"},
         "sizes": {"train": 32, "dev": 8, "test": 8}},
    ]
    project["training"]["mixture"] = {"steps": 4, "batch_size": 8, "lr": 5e-3}
    config = parse_config(yaml.safe_dump(project), source="hf-video.yaml")
    data = prepare_data(config)
    backend = get_backend("hf")
    with Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        base = ensure_model(config, store, base_spec(config))
        record = ensure_model(config, store, mixture_spec(Mixture(("general", "motion"), (0.5, 0.5))), base=base,
                              data=data)
    assert math.isfinite(record.metrics["final_loss"]) and len(record.metrics["loss_curve"]) == 4
    model = backend.load(Path(record.checkpoint_uri))
    result = evaluate(model, data, search_benchmarks(config), backend=backend, max_new_tokens=3)
    assert {name: score.samples for name, score in result.benchmarks.items()} == {"general": 8, "motion": 8}
    # One evaluation batch of images and clips gives each sample the tokens it gets alone.
    mixed = EncodedSplit.concat([data.encoded("general", "dev"), data.encoded("motion", "dev")])
    together = _generate(model, backend, mixed, [0, 8, 1, 9], data.pad_id, data.eos_id, 3)
    alone = [_generate(model, backend, mixed, [i], data.pad_id, data.eos_id, 3)[0] for i in (0, 8, 1, 9)]
    assert together == alone
