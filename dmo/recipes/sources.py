"""A domain's training samples as recipe records, and writing them where LLaMA-Factory finds them.

A recipe directory holds, per domain, ``data/<domain>.jsonl`` in the
LLaMA-Factory ShareGPT format. Image paths resolve against the recipe
directory (LLaMA-Factory's ``media_dir`` defaults to its ``dataset_dir``):
images dmo makes (synthetic domains) are written under
``data/<domain>/images/``; a user's images stay where they are, named by
absolute path, or are copied in with ``relative=True`` so the directory can be
moved. A user's records are kept as they are (turns, system prompts), only
their image paths are rewritten.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from dmo.config.schema import DmoConfig, DomainSettings, JsonlSource
from dmo.data.domains import load_domain
from dmo.data.sample import Sample
from dmo.data.sharegpt import IMAGE_PLACEHOLDER, UniqueIds, image_file_name, jsonl_lines
from dmo.errors import DataError


@dataclass(frozen=True)
class RecipeSample:
    """One training sample as a recipe writes it: a record, and where its images come from."""

    record: dict[str, Any]  # ShareGPT fields except "images"
    images: tuple[Path, ...] = ()  # existing image files (a user's domain)
    sample: Sample | None = None  # a synthetic sample, its image still in memory
    source: str = ""


def domain_samples(config: DmoConfig, domain: DomainSettings) -> list[RecipeSample]:
    """The train split of a configured domain, ready to write."""
    if isinstance(domain.source, JsonlSource):
        return _user_samples(Path(domain.source.train))
    data = load_domain(domain, seed=config.project.seed, image_size=config.model.image_size)
    return [RecipeSample(_record(s), sample=s, source=f"domain {domain.name}") for s in data.train]


def _record(sample: Sample) -> dict[str, Any]:
    return {
        "id": sample.uid,
        "messages": [
            {"role": "user", "content": IMAGE_PLACEHOLDER + sample.question},
            {"role": "assistant", "content": sample.answer},
        ],
    }


def _user_samples(path: Path) -> list[RecipeSample]:
    """A user's records as they are, with the same line checks as training reads them (length, unique ids)."""
    samples = []
    ids = UniqueIds()
    for number, where, line in jsonl_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"malformed JSON: {error.msg} at column {error.colno}", where=where) from None
        images = record.pop("images", []) if isinstance(record, dict) else None
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise DataError("field 'images' must be a list of image paths", where=where)
        if isinstance(record.get("id"), str):
            ids.claim(record["id"], number, where)
        resolved = tuple((path.parent / i).resolve() for i in images)
        missing = [str(i) for i in resolved if not i.is_file()]
        if missing:
            raise DataError(f"image not found: {missing[0]}", where=where)
        samples.append(RecipeSample(record, images=resolved, source=where))
    return samples


class DomainWriter:
    """Writes one domain's records into a recipe directory, each image once."""

    def __init__(self, root: Path, domain: str, *, relative: bool):
        self.root, self.domain, self.relative = root, domain, relative
        self.image_dir = Path("data") / domain / "images"
        self._written: dict[int, list[str]] = {}

    def line(self, index: int, item: RecipeSample) -> str:
        if index not in self._written:
            self._written[index] = self._images(item)
        return json.dumps({**item.record, "images": self._written[index]}, ensure_ascii=False) + "\n"

    def _images(self, item: RecipeSample) -> list[str]:
        if item.sample is not None:
            rel = self.image_dir / image_file_name(item.sample.uid)
            self._target(rel)
            Image.fromarray(item.sample.image).save(self.root / rel, optimize=False)
            return [rel.as_posix()]
        if not self.relative:
            return [str(image) for image in item.images]
        paths = []
        for position, image in enumerate(item.images):
            uid = str(item.record.get("id") or item.source)
            rel = self.image_dir / f"{Path(image_file_name(f'{uid}-{position}')).stem}{image.suffix.lower()}"
            self._target(rel)
            shutil.copyfile(image, self.root / rel)
            paths.append(rel.as_posix())
        return paths

    def _target(self, rel: Path) -> None:
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)


__all__ = ["DomainWriter", "RecipeSample", "domain_samples"]
