"""LLaMA-Factory / ShareGPT multimodal JSONL: the format users bring and recipes target.

One JSON object per line::

    {"messages": [{"role": "user", "content": "<image>what number is written?"},
                  {"role": "assistant", "content": "472"}],
     "images": ["images/train/000000.png"]}

Image paths are relative to the JSONL file's folder. The matching
`dataset_info.json` entry is :func:`dataset_info_entry`. An evaluation file may
add ``"answers": [...]``, every reference answer of the line (VQA's ten
annotators); without it the assistant turn is the one reference.

A video sample is LLaMA-Factory's video-as-frames form: a ``<video>`` placeholder and one
video given as its list of frame images (no codec needed)::

    {"messages": [{"role": "user", "content": "<video>which way did the dot move?"},
                  {"role": "assistant", "content": "left"}],
     "videos": [["images/train/v1-f0.png", "images/train/v1-f1.png", "images/train/v1-f2.png"]]}
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from dmo.data.sample import Sample
from dmo.errors import DataError
from dmo.files import atomic_writer

IMAGE_PLACEHOLDER = "<image>"
VIDEO_PLACEHOLDER = "<video>"
SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# A ShareGPT line of a short-answer SFT sample is a few KB; anything near this is not a sample.
MAX_LINE_CHARS = 1_000_000


def dataset_info_entry(file_name: str, *, images: bool = True, videos: bool = False) -> dict:
    """The LLaMA-Factory `dataset_info.json` entry for a file written by :func:`write_jsonl`, declaring
    the media columns its lines hold: LLaMA-Factory's loader fails on a declared column no line has."""
    media = {**({"images": "images"} if images else {}), **({"videos": "videos"} if videos else {})}
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", **media},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
        },
    }


def image_file_name(uid: str) -> str:
    """A file name for a sample's image: its id when that is a plain name, else a hash of it.

    Ids come from users' files; ``../../outside/evil`` or ``x/y`` must never become a path.
    """
    if SAFE_NAME.fullmatch(uid) and not uid.startswith("."):
        return f"{uid}.png"
    return f"id-{hashlib.sha256(uid.encode()).hexdigest()[:24]}.png"


def write_jsonl(samples: Iterable[Sample], path: Path, *, image_dir: str, force: bool = True) -> int:
    """Write samples and their PNG images; the file appears only when complete.

    Image names come from :func:`image_file_name`, so two samples with one id would
    share an image: ids must be unique in a file (``read_jsonl`` refuses duplicates).
    """
    path = Path(path)
    images = path.parent / image_dir
    images.mkdir(parents=True, exist_ok=True)
    count = 0
    seen: set[str] = set()
    with atomic_writer(path, force=force) as out:
        for sample in samples:
            name = image_file_name(sample.uid)
            if name in seen:
                raise DataError(f"two samples share the id {sample.uid!r}", where=sample.source or str(path),
                                hint="ids name image files: give every sample its own id")
            seen.add(name)
            record = {"id": sample.uid, "messages": sharegpt_messages(sample)}
            if sample.is_video:
                frames = set(frame_file_names(sample))
                if frames & seen:  # an image id "clip-f0" beside a clip "clip" would share a file
                    raise DataError(f"sample {sample.uid!r}'s frame files collide with another sample's image",
                                    where=sample.source or str(path), hint="rename one of the two ids")
                seen |= frames
                record["videos"] = [write_frames(sample, path.parent, image_dir)]
            else:
                rel = f"{image_dir}/{name}"
                Image.fromarray(sample.image).save(path.parent / rel, optimize=False)
                record["images"] = [rel]
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def sharegpt_messages(sample: Sample) -> list[dict[str, str]]:
    """The user turn (placeholder, then question) and the assistant's answer of a sample."""
    placeholder = VIDEO_PLACEHOLDER if sample.is_video else IMAGE_PLACEHOLDER
    return [{"role": "user", "content": placeholder + sample.question}, {"role": "assistant", "content": sample.answer}]


def frame_file_names(sample: Sample) -> list[str]:
    """The file name of each of a clip's frames, from its id like :func:`image_file_name`."""
    stem = image_file_name(sample.uid).removesuffix(".png")
    return [f"{stem}-f{index}.png" for index in range(len(sample.frames))]


def write_frames(sample: Sample, root: Path, image_dir: str) -> list[str]:
    """A clip's frames as PNGs under ``root/image_dir``; their paths relative to ``root``."""
    paths = []
    for name, frame in zip(frame_file_names(sample), sample.frames, strict=True):
        rel = f"{image_dir}/{name}"
        Image.fromarray(frame).save(root / rel, optimize=False)
        paths.append(rel)
    return paths


def read_jsonl(path: Path, *, domain: str, image_size: int | None = None) -> tuple[Sample, ...]:
    """Read a ShareGPT JSONL file; every problem names the file and line."""
    path = Path(path)
    samples = []
    ids = UniqueIds()
    for number, where, line in jsonl_lines(path):
        sample = _parse_line(line, where=where, base=path.parent, domain=domain, image_size=image_size,
                             index=len(samples))
        ids.claim(sample.uid, number, where)
        samples.append(sample)
    if not samples:
        raise DataError("no samples in file", where=str(path), hint="a domain needs at least one sample per split")
    return tuple(samples)


def jsonl_lines(path: Path) -> Iterator[tuple[int, str, str]]:
    """``(line number, "file:line", text)`` of every non-blank line, each refused past MAX_LINE_CHARS."""
    if not path.is_file():
        raise DataError("JSONL file not found", where=str(path))
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            if len(line) > MAX_LINE_CHARS:
                raise DataError(f"line of {len(line):,} characters; a sample line holds at most {MAX_LINE_CHARS:,}",
                                where=where, hint="a question this long cannot fit any model's context")
            yield number, where, line


class UniqueIds:
    """Sample ids seen in one file: a second use is refused naming both lines."""

    def __init__(self) -> None:
        self._first_line_of: dict[str, int] = {}

    def claim(self, uid: str, number: int, where: str) -> None:
        if uid in self._first_line_of:
            raise DataError(f"id {uid!r} is used twice (first on line {self._first_line_of[uid]})",
                            where=where, hint="give every sample of a file its own id")
        self._first_line_of[uid] = number


def _parse_line(line: str, *, where: str, base: Path, domain: str, image_size: int | None, index: int) -> Sample:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"malformed JSON: {error.msg} at column {error.colno}", where=where) from None
    if not isinstance(record, dict):
        raise DataError("each line must be a JSON object", where=where)
    messages = record.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        raise DataError("field 'messages' must be a list of a user and an assistant turn", where=where)
    user, assistant = messages[0], messages[1]
    if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in (user, assistant)):
        raise DataError("each message needs a string 'content'", where=where)
    if user.get("role") != "user" or assistant.get("role") != "assistant":
        raise DataError("messages must be [user, assistant] (roles 'user' then 'assistant')", where=where)
    question = user["content"]
    answers = record.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise DataError("field 'answers' must be a list of reference answer strings", where=where)
    if record.get("videos"):  # an empty list is the column of a file that also holds image samples
        image, placeholder = _video(record, question, where=where, base=base, image_size=image_size), VIDEO_PLACEHOLDER
    else:
        if question.count(IMAGE_PLACEHOLDER) != 1:
            raise DataError(f"the user turn needs exactly one {IMAGE_PLACEHOLDER} placeholder", where=where)
        images = record.get("images")
        if not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str):
            raise DataError("field 'images' must list exactly one image path", where=where)
        image, placeholder = _load_image(base / images[0], where=where, image_size=image_size), IMAGE_PLACEHOLDER
    uid = record.get("id") if isinstance(record.get("id"), str) else f"{domain}-{index:06d}"
    return Sample(
        uid=uid,
        domain=domain,
        image=image,
        question=question.replace(placeholder, "").strip(),
        answer=assistant["content"].strip(),
        source=where,
        references=tuple(a.strip() for a in answers),
    )


def _video(record: dict, question: str, *, where: str, base: Path, image_size: int | None) -> np.ndarray:
    """A line's one video, given as its frame images, as a (F, H, W, 3) clip."""
    if record.get("images"):
        raise DataError("a line holds one image or one video, not both", where=where)
    if question.count(VIDEO_PLACEHOLDER) != 1 or IMAGE_PLACEHOLDER in question:
        raise DataError(f"the user turn of a video sample needs exactly one {VIDEO_PLACEHOLDER} placeholder",
                        where=where)
    videos = record["videos"]
    if (not isinstance(videos, list) or len(videos) != 1 or not isinstance(videos[0], list) or not videos[0]
            or not all(isinstance(frame, str) for frame in videos[0])):
        raise DataError("field 'videos' must hold exactly one video, as a list of its frame image paths "
                        "(video files are not read: extract the frames)", where=where)
    frames = [_load_image(base / frame, where=where, image_size=image_size, what=f"video frame {number}")
              for number, frame in enumerate(videos[0])]
    if len({frame.shape for frame in frames}) != 1:
        raise DataError("the frames of a video differ in size", where=where, hint="give every frame the same size")
    return np.stack(frames)


def _load_image(path: Path, *, where: str, image_size: int | None, what: str = "image") -> np.ndarray:
    try:
        with Image.open(path) as handle:
            image = handle.convert("RGB")
            if image_size is not None and image.size != (image_size, image_size):
                image = image.resize((image_size, image_size), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}", where=where) from None
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"cannot decode {what} {path}: {error}", where=where) from None
