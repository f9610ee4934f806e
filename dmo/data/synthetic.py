"""Four procedural multimodal domains, small mirrors of the reference study's.

Each generator draws one 32×32 image (or, for the video domains of
:mod:`dmo.data.synthetic_video`, a clip of 32×32 frames) with NumPy and asks one question with a
short answer. The answer always depends on the image: the questions are built
so that the text alone leaves several answers equally likely (see
tests/data/test_synthetic.py for the text-only baseline check).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
from PIL import Image

from dmo.data import draw
from dmo.data.sample import SPLITS, Sample
from dmo.data.synthetic_video import VIDEO_GENERATORS
from dmo.errors import DataError

CANVAS = draw.CANVAS
Generated = tuple[np.ndarray, str, str]  # image (CANVAS, CANVAS, 3) uint8, question, answer
Generator = Callable[[np.random.Generator], Generated]


def general_vqa(rng: np.random.Generator) -> Generated:
    """Colour, kind and side of one shape (general VQA)."""
    color = str(rng.choice(list(draw.COLORS)))
    kind = str(rng.choice(draw.SHAPES))
    image = draw.blank(CANVAS)
    size = int(rng.integers(9, 15))
    left = int(rng.integers(0, CANVAS - size + 1))
    top = int(rng.integers(0, CANVAS - size + 1))
    draw.paint(image, draw.shape_mask(kind, size), top, left, draw.COLORS[color])
    template = int(rng.integers(0, 3))
    if template == 0:
        return image, "what color is the shape?", color
    if template == 1:
        return image, "which shape is it?", kind
    side = "left" if left + size / 2 < CANVAS / 2 else "right"
    return image, "is the shape on the left or right?", side


def counting(rng: np.random.Generator) -> Generated:
    """How many shapes of one kind: one to five, scattered on a 4×4 grid."""
    kind = str(rng.choice(draw.SHAPES))
    color = draw.COLORS[str(rng.choice(list(draw.COLORS)))]
    count = int(rng.integers(1, 6))
    image = draw.blank(CANVAS)
    for cell in rng.choice(16, size=count, replace=False):
        row, col = divmod(int(cell), 4)
        top, left = row * 8 + int(rng.integers(0, 2)), col * 8 + int(rng.integers(0, 2))
        draw.paint(image, draw.shape_mask(kind, 6), top, left, color)
    return image, f"how many {kind}s are there?", str(count)


def counting_among(rng: np.random.Generator) -> Generated:
    """How many shapes of one kind among shapes of another: one to six targets and up to three
    distractors of the same colour. Counting occupied cells solves ``counting`` at 100 % after
    one expert's training, so more counting data cannot help a mixture model; here the count needs
    the kind of each 6-pixel shape, which other domains train too (issue 19). It replaces counting in a
    world (configs/fidelity/world-v4.yaml) and asks counting's question, so the two never sit side by side."""
    kind, other = (str(k) for k in rng.choice(draw.SHAPES, size=2, replace=False))
    color = draw.COLORS[str(rng.choice(list(draw.COLORS)))]
    count, distractors = int(rng.integers(1, 7)), int(rng.integers(0, 4))
    image = draw.blank(CANVAS)
    for index, cell in enumerate(rng.choice(16, size=count + distractors, replace=False)):
        row, col = divmod(int(cell), 4)
        top, left = row * 8 + int(rng.integers(0, 2)), col * 8 + int(rng.integers(0, 2))
        draw.paint(image, draw.shape_mask(kind if index < count else other, 6), top, left, color)
    return image, f"how many {kind}s are there?", str(count)


def _written(rng: np.random.Generator, text: str, scale: int) -> np.ndarray:
    """``text`` in dark ink at a random place on a light background."""
    image = draw.blank(CANVAS, background=tuple(int(v) for v in rng.integers(215, 256, size=3)))
    left = int(rng.integers(0, CANVAS - draw.text_width(text, scale) + 1))
    top = int(rng.integers(0, CANVAS - 5 * scale + 1))
    color = tuple(int(v) for v in rng.integers(0, 90, size=3))
    draw.write(image, text, top, left, scale, color)
    return image


def ocr(rng: np.random.Generator) -> Generated:
    """Read a two-digit number rendered at a random place."""
    text = "".join(rng.choice(draw.GLYPHS, size=2))
    return _written(rng, text, scale=2), "what number is written?", text


def digit(rng: np.random.Generator) -> Generated:
    """Read one large digit: OCR a 32-pixel image can carry, where the demo's two 2×-scale digits stay near
    chance. Its 500-step expert reached 25 % and 14.5 % on two seeds against a chance of 10 % (docs/fidelity.md)."""
    text = str(rng.choice(draw.GLYPHS))
    return _written(rng, text, scale=3), "what digit is written?", text


def chart(rng: np.random.Generator) -> Generated:
    """Read a bar chart of three bars: which is the tallest or the shortest."""
    colors = rng.choice(list(draw.COLORS), size=3, replace=False)
    values = rng.choice(np.arange(1, 9), size=3, replace=False)  # distinct: a unique answer
    image = draw.blank(CANVAS)
    image[30, 1:31] = (0, 0, 0)  # x axis
    for i, (color, value) in enumerate(zip(colors, values)):
        height = 3 * int(value)
        left = 3 + i * 9
        image[30 - height : 30, left : left + 7] = draw.COLORS[str(color)]
    if rng.random() < 0.5:
        return image, "which bar is the tallest?", str(colors[int(np.argmax(values))])
    return image, "which bar is the shortest?", str(colors[int(np.argmin(values))])


GENERATORS: dict[str, Generator] = {
    "general": general_vqa,
    "ocr": ocr,
    "digit": digit,
    "counting": counting,
    "counting_among": counting_among,
    "chart": chart,
    **VIDEO_GENERATORS,  # (frames, H, W, 3) clips: dmo.data.synthetic_video
}


# --------------------------------------------------------------------------- evaluation-only sets
# Benchmarks that are not a training domain's dev split: each needs two domains' skills, or asks a
# known skill in a question style no domain trains (the reference study's setting: four training
# domains scored on other benchmarks).


def count_color(rng: np.random.Generator) -> Generated:
    """How many shapes of one colour among shapes of two colours: counting and colour together."""
    first, second = (str(c) for c in rng.choice(list(draw.COLORS), size=2, replace=False))
    counts = {first: int(rng.integers(1, 5)), second: int(rng.integers(1, 5))}
    kind = str(rng.choice(draw.SHAPES))
    image = draw.blank(CANVAS)
    cells = rng.choice(16, size=sum(counts.values()), replace=False)
    colors = [first] * counts[first] + [second] * counts[second]
    for cell, color in zip(cells, colors):
        row, col = divmod(int(cell), 4)
        draw.paint(image, draw.shape_mask(kind, 6), row * 8 + 1, col * 8 + 1, draw.COLORS[color])
    asked = first if rng.random() < 0.5 else second
    return image, f"how many {asked} shapes are there?", str(counts[asked])


def chart_value(rng: np.random.Generator) -> Generated:
    """The height of one bar (1 to 8), a chart question the chart domain never asks."""
    colors = rng.choice(list(draw.COLORS), size=3, replace=False)
    values = rng.integers(1, 9, size=3)
    image = draw.blank(CANVAS)
    image[30, 1:31] = (0, 0, 0)
    for i, (color, value) in enumerate(zip(colors, values)):
        image[30 - 3 * int(value) : 30, 3 + i * 9 : 10 + i * 9] = draw.COLORS[str(color)]
    asked = int(rng.integers(0, 3))
    return image, f"how tall is the {colors[asked]} bar?", str(int(values[asked]))


def shape_present(rng: np.random.Generator) -> Generated:
    """POPE-style: is there a shape of this colour and kind? Half the answers are yes."""
    color, kind = str(rng.choice(list(draw.COLORS))), str(rng.choice(draw.SHAPES))
    present = bool(rng.random() < 0.5)
    shown_color, shown_kind = color, kind
    if not present:  # change the colour, the kind or both, so neither alone gives the answer away
        change = int(rng.integers(0, 3))
        if change in (0, 2):
            shown_color = str(rng.choice([c for c in draw.COLORS if c != color]))
        if change in (1, 2):
            shown_kind = str(rng.choice([k for k in draw.SHAPES if k != kind]))
    image = draw.blank(CANVAS)
    size = int(rng.integers(9, 15))
    top, left = (int(v) for v in rng.integers(0, CANVAS - size + 1, size=2))
    draw.paint(image, draw.shape_mask(shown_kind, size), top, left, draw.COLORS[shown_color])
    return image, f"is there a {color} {kind}?", "yes" if present else "no"


BENCHMARK_GENERATORS: dict[str, Generator] = {
    "count_color": count_color,
    "chart_value": chart_value,
    "shape_present": shape_present,
}


def get_generator(kind: str) -> Generator:
    generator = GENERATORS.get(kind) or BENCHMARK_GENERATORS.get(kind)
    if generator is None:
        known = ", ".join([*GENERATORS, *BENCHMARK_GENERATORS])
        raise DataError(f"unknown synthetic generator {kind!r}; known: {known}")
    return generator


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if size == CANVAS:
        return image
    if image.ndim == 4:  # a clip: each frame alike
        return np.stack([_resize(frame, size) for frame in image])
    if size % CANVAS == 0:
        factor = size // CANVAS
        return image.repeat(factor, axis=0).repeat(factor, axis=1)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.NEAREST))


def generate_splits(
    kind: str, *, domain: str, sizes: dict[str, int], seed: int, image_size: int = CANVAS
) -> dict[str, tuple[Sample, ...]]:
    """Deterministic, pairwise disjoint train/dev/test splits of one synthetic domain.

    Each split has its own random stream (seed, domain, split), so growing the
    train split never changes dev or test; a sample equal to one in an earlier
    split is drawn again, so no test sample is ever seen in training.
    """
    generator = get_generator(kind)
    seen: set[bytes] = set()
    out: dict[str, tuple[Sample, ...]] = {}
    for split_index, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, _stable_int(domain), split_index])
        samples: list[Sample] = []
        keys: set[bytes] = set()
        attempts = 0
        while len(samples) < sizes.get(split, 0):
            attempts += 1
            if attempts > 50 * sizes.get(split, 0) + 1000:
                raise DataError(
                    f"generator {kind!r} cannot produce {sizes.get(split, 0)} distinct {split} samples",
                    where=f"domain {domain}",
                    hint="ask for fewer samples",
                )
            image, question, answer = generator(rng)
            sample = Sample(
                uid=f"{domain}-{split}-{len(samples):06d}",
                domain=domain,
                image=_resize(image, image_size),
                question=question,
                answer=answer,
            )
            key = sample.content_key()
            if key in seen:
                continue
            keys.add(key)
            samples.append(sample)
        seen |= keys
        out[split] = tuple(samples)
    return out
