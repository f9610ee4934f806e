from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from dmo.data import GENERATORS, generate_splits

SIZES = {"train": 600, "dev": 150, "test": 150}


@pytest.fixture(scope="module", params=sorted(GENERATORS))
def splits(request):
    return request.param, generate_splits(request.param, domain=request.param, sizes=SIZES, seed=7)


def test_same_seed_same_samples(splits):
    kind, first = splits
    again = generate_splits(kind, domain=kind, sizes=SIZES, seed=7)
    assert all(a == b for split in SIZES for a, b in zip(first[split], again[split], strict=True))


def test_other_seed_other_samples(splits):
    kind, first = splits
    other = generate_splits(kind, domain=kind, sizes=SIZES, seed=8)
    assert sum(a == b for a, b in zip(first["train"], other["train"])) < 5


def test_splits_are_disjoint(splits):
    _, data = splits
    keys = {split: {s.content_key() for s in data[split]} for split in SIZES}
    assert not keys["train"] & keys["dev"]
    assert not keys["train"] & keys["test"]
    assert not keys["dev"] & keys["test"]


def test_sizes_and_images(splits):
    kind, data = splits
    shape = (4, 32, 32, 3) if kind.startswith("video_") else (32, 32, 3)
    for split, n in SIZES.items():
        assert len(data[split]) == n
        assert data[split][0].image.shape == shape
        assert data[split][0].image.dtype == np.uint8


def test_text_alone_does_not_solve_the_domain(splits):
    """Best text-only predictor (majority answer per question, fitted on train) stays weak on test."""
    _, data = splits
    answers_by_question = defaultdict(Counter)
    for sample in data["train"]:
        answers_by_question[sample.question][sample.answer] += 1
    hits = sum(
        answers_by_question[s.question].most_common(1)[0][0] == s.answer
        for s in data["test"]
        if s.question in answers_by_question
    )
    assert hits / len(data["test"]) < 0.4


def test_answers_depend_on_the_image(splits):
    """The same question gets several different answers: the image decides."""
    _, data = splits
    answers = defaultdict(set)
    for sample in data["train"]:
        answers[sample.question].add(sample.answer)
    assert np.mean([len(a) > 1 for a in answers.values()]) > 0.9


def test_domains_are_distinguishable():
    by_domain = {
        kind: {s.question for s in generate_splits(kind, domain=kind, sizes=SIZES, seed=1)["train"]}
        for kind in GENERATORS
    }
    kinds = sorted(by_domain)
    # counting_among replaces counting in a world (world-v4) and asks its question; it never sits beside it.
    variants = {frozenset({"counting", "counting_among"})}
    for i, a in enumerate(kinds):
        for b in kinds[i + 1 :]:
            if frozenset({a, b}) not in variants:
                assert not by_domain[a] & by_domain[b], f"{a} and {b} share question texts"


def test_growing_train_keeps_dev_and_test():
    small = generate_splits("chart", domain="chart", sizes=SIZES, seed=3)
    larger = generate_splits("chart", domain="chart", sizes={**SIZES, "train": 900}, seed=3)
    assert all(a == b for a, b in zip(small["test"], larger["test"], strict=True))


# --------------------------------------------------------------------------- evaluation-only sets


@pytest.mark.parametrize("kind", ["count_color", "chart_value", "shape_present"])
def test_evaluation_sets_need_the_image_and_ask_what_no_domain_trains(kind):
    from dmo.data.synthetic import BENCHMARK_GENERATORS

    assert kind in BENCHMARK_GENERATORS
    data = generate_splits(kind, domain=kind, sizes=SIZES, seed=7)
    again = generate_splits(kind, domain=kind, sizes=SIZES, seed=7)
    assert all(a == b for a, b in zip(data["dev"], again["dev"], strict=True))
    answers_by_question = defaultdict(Counter)
    for sample in data["train"]:
        answers_by_question[sample.question][sample.answer] += 1
    options = len({s.answer for s in data["train"]})
    hits = sum(answers_by_question[s.question].most_common(1)[0][0] == s.answer for s in data["test"]
               if s.question in answers_by_question)
    assert hits / len(data["test"]) < 1 / options + 0.15  # text alone: about chance
    trained = {s.question for k in GENERATORS for s in generate_splits(k, domain=k, sizes=SIZES, seed=1)["train"]}
    assert not {s.question for s in data["train"]} & trained  # a question style no training domain asks


def test_the_config_s_benchmark_generators_are_the_registry_s():
    from dmo.config import names
    from dmo.data.synthetic import BENCHMARK_GENERATORS

    assert names.BENCHMARK_GENERATORS == tuple(BENCHMARK_GENERATORS)


# --------------------------------------------------------------------------- video domains (issue 21)


def _shape_pixels(frame: np.ndarray) -> np.ndarray:
    return np.argwhere((frame != 255).any(axis=-1))  # every non-white pixel


@pytest.mark.parametrize("kind", ["video_count", "video_motion", "video_change"])
def test_no_single_frame_of_a_clip_holds_its_answer(kind):
    """What each domain needs from more than one frame, checked on the pixels."""
    samples = generate_splits(kind, domain=kind, sizes={"train": 200}, seed=4)["train"]
    assert len({s.answer for s in samples}) >= 3
    for sample in samples:
        frames = sample.frames
        assert frames.shape == (4, 32, 32, 3) and sample.is_video
        shown = [len(_shape_pixels(f)) > 0 for f in frames]
        if kind == "video_count":  # each frame shows one shape or none: the count is over frames
            assert sum(shown) == int(sample.answer)
            assert all(len({tuple(frames[i][tuple(p)]) for p in _shape_pixels(frames[i])}) == 1
                       for i in range(4) if shown[i])
        elif kind == "video_motion":  # the same dot, moving one way by the same step every frame
            centres = np.array([_shape_pixels(f).mean(axis=0) for f in frames])  # (row, col)
            steps = np.diff(centres, axis=0)
            axis, sign = {"left": (1, -1), "right": (1, 1), "up": (0, -1), "down": (0, 1)}[sample.answer]
            assert np.all(sign * steps[:, axis] > 0) and np.allclose(steps[:, 1 - axis], 0)
            assert np.allclose(steps, steps[0])
        else:  # the first and the last frame differ in the answered attribute, and only in it
            first, last = frames[0], frames[-1]
            colour = lambda f: {tuple(f[tuple(p)]) for p in _shape_pixels(f)}
            place = lambda f: tuple(_shape_pixels(f).min(axis=0))
            changed = {"color": colour(first) != colour(last), "place": place(first) != place(last)}
            assert changed["color"] == (sample.answer == "color")
            if sample.answer == "shape":
                assert not np.array_equal(_shape_pixels(first), _shape_pixels(last))
            if sample.answer == "place":
                assert changed["place"]
