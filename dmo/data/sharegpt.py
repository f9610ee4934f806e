"""LLaMA-Factory / ShareGPT multimodal JSONL: the format users bring and recipes target.

One JSON object per line::

    {"messages": [{"role": "user", "content": "<image>what number is written?"},
                  {"role": "assistant", "content": "472"}],
     "images": ["images/train/000000.png"]}

Image paths are relative to the JSONL file's folder. The matching
`dataset_info.json` entry is :func:`dataset_info_entry`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from dmo.data.sample import Sample
from dmo.errors import DataError

IMAGE_PLACEHOLDER = "<image>"


def dataset_info_entry(file_name: str) -> dict:
    """The LLaMA-Factory `dataset_info.json` entry for a file written by :func:`write_jsonl`."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
        },
    }


def write_jsonl(samples: Iterable[Sample], path: Path, *, image_dir: str) -> int:
    """Write samples and their PNG images; the file appears only when complete."""
    path = Path(path)
    images = path.parent / image_dir
    images.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as out:
        for sample in samples:
            rel = f"{image_dir}/{sample.uid}.png"
            Image.fromarray(sample.image).save(path.parent / rel, optimize=False)
            record = {
                "id": sample.uid,
                "messages": [
                    {"role": "user", "content": IMAGE_PLACEHOLDER + sample.question},
                    {"role": "assistant", "content": sample.answer},
                ],
                "images": [rel],
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return count


def read_jsonl(path: Path, *, domain: str, image_size: int | None = None) -> tuple[Sample, ...]:
    """Read a ShareGPT JSONL file; every problem names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("JSONL file not found", where=str(path))
    samples = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            samples.append(_parse_line(line, where=where, base=path.parent, domain=domain, image_size=image_size, index=len(samples)))
    if not samples:
        raise DataError("no samples in file", where=str(path), hint="a domain needs at least one sample per split")
    return tuple(samples)


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
    if question.count(IMAGE_PLACEHOLDER) != 1:
        raise DataError(f"the user turn needs exactly one {IMAGE_PLACEHOLDER} placeholder", where=where)
    images = record.get("images")
    if not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], str):
        raise DataError("field 'images' must list exactly one image path", where=where)
    image = _load_image(base / images[0], where=where, image_size=image_size)
    uid = record.get("id") if isinstance(record.get("id"), str) else f"{domain}-{index:06d}"
    return Sample(
        uid=uid,
        domain=domain,
        image=image,
        question=question.replace(IMAGE_PLACEHOLDER, "").strip(),
        answer=assistant["content"].strip(),
    )


def _load_image(path: Path, *, where: str, image_size: int | None) -> np.ndarray:
    try:
        with Image.open(path) as handle:
            image = handle.convert("RGB")
            if image_size is not None and image.size != (image_size, image_size):
                image = image.resize((image_size, image_size), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataError(f"image not found: {path}", where=where) from None
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"cannot decode image {path}: {error}", where=where) from None
