from __future__ import annotations

import json

import pytest
from PIL import Image

from dmo.config import load_config
from dmo.data import generate_splits, read_jsonl, write_domains, write_jsonl
from dmo.data.domains import load_domains
from dmo.errors import DataError


@pytest.fixture()
def samples():
    return generate_splits("ocr", domain="ocr", sizes={"train": 20, "dev": 5, "test": 5}, seed=0)["train"]


def test_round_trip_gives_identical_samples(tmp_path, samples):
    path = tmp_path / "ocr" / "train.jsonl"
    assert write_jsonl(samples, path, image_dir="images/train") == len(samples)
    assert read_jsonl(path, domain="ocr") == samples


def test_written_records_are_llamafactory_sharegpt(tmp_path, samples):
    path = tmp_path / "train.jsonl"
    write_jsonl(samples[:1], path, image_dir="img")
    record = json.loads(path.read_text().splitlines()[0])
    assert [m["role"] for m in record["messages"]] == ["user", "assistant"]
    assert record["messages"][0]["content"].startswith("<image>")
    assert (tmp_path / record["images"][0]).is_file()


def test_malformed_line_names_the_line_number(tmp_path, samples):
    path = tmp_path / "train.jsonl"
    write_jsonl(samples[:3], path, image_dir="img")
    lines = path.read_text().splitlines()
    lines.insert(2, '{"messages": [')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train\.jsonl:3: malformed JSON"):
        read_jsonl(path, domain="ocr")


def test_missing_image_names_the_path(tmp_path, samples):
    path = tmp_path / "train.jsonl"
    write_jsonl(samples[:2], path, image_dir="img")
    missing = tmp_path / "img" / f"{samples[1].uid}.png"
    missing.unlink()
    with pytest.raises(DataError) as caught:
        read_jsonl(path, domain="ocr")
    assert str(missing) in caught.value.render() and "train.jsonl:2" in caught.value.render()


def test_undecodable_image_is_refused(tmp_path, samples):
    path = tmp_path / "train.jsonl"
    write_jsonl(samples[:1], path, image_dir="img")
    (tmp_path / "img" / f"{samples[0].uid}.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot decode image"):
        read_jsonl(path, domain="ocr")


def test_user_images_are_resized_to_the_model(tmp_path, samples):
    big = tmp_path / "big.png"
    Image.new("RGB", (64, 48), (10, 20, 30)).save(big)
    record = {"messages": [{"role": "user", "content": "<image>what?"}, {"role": "assistant", "content": "x"}], "images": ["big.png"]}
    path = tmp_path / "user.jsonl"
    path.write_text(json.dumps(record) + "\n")
    (sample,) = read_jsonl(path, domain="mine", image_size=32)
    assert sample.image.shape == (32, 32, 3) and sample.question == "what?"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"messages": [{"role": "user", "content": "what?"}, {"role": "assistant", "content": "x"}], "images": ["a.png"]}, "placeholder"),
        ({"messages": [{"role": "user", "content": "<image>q"}], "images": ["a.png"]}, "messages"),
        ({"messages": [{"role": "user", "content": "<image>q"}, {"role": "assistant", "content": "x"}]}, "images"),
        ([1, 2], "JSON object"),
    ],
)
def test_structural_problems_are_named(tmp_path, record, message):
    path = tmp_path / "user.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match=message):
        read_jsonl(path, domain="mine")


def test_empty_domain_file_is_refused(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DataError, match="no samples"):
        read_jsonl(path, domain="mine")


def test_generated_folder_loads_back_as_jsonl_domains(tmp_path, repo_root):
    config = load_config(repo_root / "configs" / "demo.yaml")
    small = config.model_copy(update={"domains": tuple(
        d.model_copy(update={"sizes": d.sizes.model_copy(update={"train": 8, "dev": 4, "test": 4})}) for d in config.domains
    )})
    domains = load_domains(small)
    info = write_domains(domains, tmp_path)
    assert set(info) == {f"{d}_{s}" for d in domains for s in ("train", "dev", "test")}
    for name, data in domains.items():
        assert read_jsonl(tmp_path / name / "test.jsonl", domain=name) == data.test


# --------------------------------------------------------------------------- video samples (issue 21)


@pytest.fixture()
def clips():
    return generate_splits("video_motion", domain="motion", sizes={"train": 6}, seed=2)["train"]


def test_a_video_round_trips_as_llamafactory_frames(tmp_path, clips):
    path = tmp_path / "motion.jsonl"
    assert write_jsonl(clips, path, image_dir="frames") == 6
    back = read_jsonl(path, domain="motion")
    assert all(a == b for a, b in zip(clips, back, strict=True)) and all(s.is_video for s in back)
    line = json.loads(path.read_text().splitlines()[0])
    assert "images" not in line and line["messages"][0]["content"].startswith("<video>")
    assert len(line["videos"]) == 1 and len(line["videos"][0]) == 4  # one video, as its four frames
    assert all((tmp_path / frame).is_file() for frame in line["videos"][0])


def test_a_written_video_domain_declares_the_video_column_and_no_image_column(tmp_path, clips):
    """LLaMA-Factory's loader fails on a declared column that no line holds (tests/recipes)."""
    from dmo.data.sample import DomainData

    info = write_domains({"motion": DomainData("motion", clips, clips[:2], clips[:2])}, tmp_path)
    assert info["motion_train"]["columns"] == {"messages": "messages", "videos": "videos"}
    assert json.loads((tmp_path / "dataset_info.json").read_text())["motion_dev"]["columns"]["videos"] == "videos"


@pytest.mark.parametrize(("damage", "message"), [
    ("missing", "video frame 2 not found"),
    ("undecodable", "cannot decode video frame 2"),
])
def test_a_video_with_a_missing_or_undecodable_frame_is_refused_with_file_and_line(tmp_path, clips, damage, message):
    path = tmp_path / "motion.jsonl"
    write_jsonl(clips, path, image_dir="frames")
    frame = tmp_path / json.loads(path.read_text().splitlines()[3])["videos"][0][2]
    if damage == "missing":
        frame.unlink()
    else:
        frame.write_bytes(b"not a png")
    with pytest.raises(DataError) as refused:
        read_jsonl(path, domain="motion")
    assert f"{path}:4" in refused.value.render() and message in refused.value.render()


@pytest.mark.parametrize(("change", "message"), [
    ({"videos": ["a.png"]}, "exactly one video, as a list of its frame image paths"),
    ({"videos": [[]]}, "exactly one video"),
    ({"images": ["a.png"]}, "one image or one video, not both"),
    ({"content": "which way?"}, "exactly one <video> placeholder"),
])
def test_structural_problems_of_a_video_line_are_named(tmp_path, clips, change, message):
    path = tmp_path / "motion.jsonl"
    write_jsonl(clips[:1], path, image_dir="frames")
    line = json.loads(path.read_text())
    if "content" in change:
        line["messages"][0]["content"] = change["content"]
    else:
        line.update(change)
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(DataError, match=message) as refused:
        read_jsonl(path, domain="motion")
    assert f"{path}:1" in refused.value.render()


def test_an_image_line_with_an_empty_videos_column_reads_as_an_image(tmp_path, samples):
    path = tmp_path / "mixed.jsonl"
    write_jsonl(samples[:1], path, image_dir="images")
    line = json.loads(path.read_text())
    path.write_text(json.dumps({**line, "videos": []}) + "\n")  # a file that also holds video samples
    (back,) = read_jsonl(path, domain="ocr")
    assert not back.is_video and back == samples[0]


def test_a_clip_whose_frame_files_would_overwrite_an_image_is_refused(tmp_path, samples, clips):
    from dataclasses import replace

    image = replace(samples[0], uid="clip-f0")
    clip = replace(clips[0], uid="clip")
    with pytest.raises(DataError, match="collide"):
        write_jsonl([image, clip], tmp_path / "both.jsonl", image_dir="images")
    assert not (tmp_path / "both.jsonl").exists()


def test_the_encoder_fits_images_of_another_size_to_the_model(tiny_data):
    from dataclasses import replace

    import numpy as np

    sample = tiny_data.domains[tiny_data.names[0]].dev[0]
    big = replace(sample, image=np.asarray(
        Image.fromarray(sample.image).resize((48, 48)), dtype=np.uint8))
    split = tiny_data.encoder.encode([sample, big])
    assert split.images.pixel_values.shape[-2:] == sample.image.shape[:2]
    assert split.prompts[0] == split.prompts[1]
