"""A domain's training samples as recipe records, and writing them where LLaMA-Factory finds them.

A recipe directory holds, per domain, ``data/<domain>.jsonl`` in the
LLaMA-Factory ShareGPT format. Image paths resolve against the recipe
directory (LLaMA-Factory's ``media_dir`` defaults to its ``dataset_dir``):
images dmo makes (synthetic domains) are written under
``data/<domain>/images/``; a user's images stay where they are, named by
absolute path, or are copied in with ``relative=True`` so the directory can be
moved. A user's records are kept as they are (turns, system prompts), only
their image paths are rewritten. Videos go the same way, each as the list of its
frame images (LLaMA-Factory's ``videos`` column).
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
from dmo.data.sharegpt import (
    UniqueIds,
    frame_file_names,
    image_file_name,
    jsonl_lines,
    sharegpt_messages,
    write_frames,
)
from dmo.errors import DataError


@dataclass(frozen=True)
class RecipeSample:
    """One training sample as a recipe writes it: a record, and where its images come from."""

    record: dict[str, Any]  # ShareGPT fields except "images" and "videos"
    images: tuple[Path, ...] = ()  # existing image files (a user's domain)
    sample: Sample | None = None  # a synthetic sample, its image or clip still in memory
    source: str = ""
    videos: tuple[tuple[Path, ...], ...] = ()  # existing frame files of each video (a user's domain)

    @property
    def is_video(self) -> bool:
        return bool(self.videos) or (self.sample is not None and self.sample.is_video)


def domain_samples(config: DmoConfig, domain: DomainSettings) -> list[RecipeSample]:
    """The train split of a configured domain, ready to write."""
    if isinstance(domain.source, JsonlSource):
        return _user_samples(Path(domain.source.train))
    data = load_domain(domain, seed=config.project.seed, image_size=config.model.image_size)
    return [RecipeSample(_record(s), sample=s, source=f"domain {domain.name}") for s in data.train]


def domain_size(config: DmoConfig, domain: DomainSettings) -> int:
    """How many samples :func:`domain_samples` gives, without generating a synthetic domain (what a
    JSON recipe's shares need): a generator makes exactly the train size the config asks for, or fails."""
    if isinstance(domain.source, JsonlSource):
        return len(_user_samples(Path(domain.source.train)))
    return domain.sizes.train


def _record(sample: Sample) -> dict[str, Any]:
    return {"id": sample.uid, "messages": sharegpt_messages(sample)}


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
        videos = record.pop("videos", []) or []
        if not isinstance(videos, list) or not all(isinstance(v, list) and v and all(isinstance(f, str) for f in v)
                                                   for v in videos):
            raise DataError("field 'videos' must be a list of videos, each the list of its frame image paths",
                            where=where)
        if isinstance(record.get("id"), str):
            ids.claim(record["id"], number, where)
        resolved = tuple((path.parent / i).resolve() for i in images)
        frames = tuple(tuple((path.parent / f).resolve() for f in video) for video in videos)
        missing = [str(i) for i in (*resolved, *(f for video in frames for f in video)) if not i.is_file()]
        if missing:
            raise DataError(f"image not found: {missing[0]}", where=where)
        samples.append(RecipeSample(record, images=resolved, source=where, videos=frames))
    return samples


class DomainWriter:
    """Writes one domain's records into a recipe directory, each image once."""

    def __init__(self, root: Path, domain: str, *, relative: bool):
        self.root, self.domain, self.relative = root, domain, relative
        self.image_dir = Path("data") / domain / "images"
        self._written: dict[int, dict[str, list]] = {}
        self._names: set[str] = set()  # file names written under image_dir: two samples never share one

    def line(self, index: int, item: RecipeSample) -> str:
        if index not in self._written:
            self._written[index] = self._media(item)
        return json.dumps({**item.record, **self._written[index]}, ensure_ascii=False) + "\n"

    def _media(self, item: RecipeSample) -> dict[str, list]:
        """The line's ``images`` (and ``videos``, each a list of frame paths), written or copied once."""
        if item.sample is not None:
            if item.sample.is_video:
                self._claim(frame_file_names(item.sample), item)
                (self.root / self.image_dir).mkdir(parents=True, exist_ok=True)
                return {"videos": [write_frames(item.sample, self.root, self.image_dir.as_posix())]}
            rel = self.image_dir / image_file_name(item.sample.uid)
            self._claim([rel.name], item)
            self._target(rel)
            Image.fromarray(item.sample.image).save(self.root / rel, optimize=False)
            return {"images": [rel.as_posix()]}
        uid = str(item.record.get("id") or item.source)
        media: dict[str, list] = {"images": self._files(item.images, f"{uid}-")}
        if item.videos:
            media["videos"] = [self._files(video, f"{uid}-v{number}-") for number, video in enumerate(item.videos)]
        return media

    def _files(self, files: tuple[Path, ...], prefix: str) -> list[str]:
        """Absolute paths, or (``relative``) copies inside the recipe named by the record."""
        if not self.relative:
            return [str(file) for file in files]
        paths = []
        for position, file in enumerate(files):
            rel = self.image_dir / f"{Path(image_file_name(f'{prefix}{position}')).stem}{file.suffix.lower()}"
            self._names.add(rel.name)  # named by the record and position: unique within a domain's file
            self._target(rel)
            shutil.copyfile(file, self.root / rel)
            paths.append(rel.as_posix())
        return paths

    def _claim(self, names: list[str], item: RecipeSample) -> None:
        if self._names & set(names):
            raise DataError(f"sample {item.record.get('id')!r} of domain {self.domain} would overwrite another "
                            "sample's image", where=item.source, hint="give the two samples ids that differ")
        self._names.update(names)

    def _target(self, rel: Path) -> None:
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)


__all__ = ["DomainWriter", "RecipeSample", "domain_samples"]
