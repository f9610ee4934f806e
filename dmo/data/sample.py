"""A multimodal SFT sample and a domain's three splits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Sample:
    """One image (or one video's frames), one question, one short answer."""

    uid: str
    domain: str
    image: np.ndarray  # (H, W, 3) uint8, or a video's frames (F, H, W, 3)
    question: str
    answer: str
    source: str | None = None  # where it came from, e.g. "train.jsonl:12", for error messages
    references: tuple[str, ...] = ()  # every reference answer of an evaluation sample (VQA's ten); () = (answer,)

    @property
    def is_video(self) -> bool:
        return self.image.ndim == 4

    @property
    def frames(self) -> np.ndarray:
        """(F, H, W, 3): a video's frames, or an image as a clip of one."""
        return self.image if self.is_video else self.image[None]

    @property
    def reference_answers(self) -> tuple[str, ...]:
        return self.references or (self.answer,)

    def content_key(self) -> bytes:
        """What makes two samples the same, whatever their uid: image, question, answer."""
        digest = hashlib.sha1(np.ascontiguousarray(self.image).tobytes())
        digest.update(f"\0{self.question}\0{self.answer}".encode())
        return digest.digest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sample):
            return NotImplemented
        return (
            self.uid == other.uid
            and self.domain == other.domain
            and self.question == other.question
            and self.answer == other.answer
            and self.image.shape == other.image.shape
            and bool(np.array_equal(self.image, other.image))
        )

    __hash__ = None  # type: ignore[assignment]  # mutable array inside: not hashable


SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class DomainData:
    name: str
    train: tuple[Sample, ...]
    dev: tuple[Sample, ...]
    test: tuple[Sample, ...]

    def split(self, name: str) -> tuple[Sample, ...]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; known: {', '.join(SPLITS)}")
        return getattr(self, name)

    def content_hash(self) -> str:
        """sha256 over every sample of every split, in order: keys the store's dataset rows."""
        digest = hashlib.sha256(self.name.encode())
        for split in SPLITS:
            digest.update(f"\0{split}\0".encode())
            for sample in self.split(split):
                digest.update(sample.content_key())
        return digest.hexdigest()
