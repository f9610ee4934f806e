"""Pixel-level drawing for the synthetic domains: NumPy only, deterministic.

A fixed 3×5 bitmap font instead of a system font keeps the images identical on
every machine and every Pillow version.
"""

from __future__ import annotations

import numpy as np

CANVAS = 32  # side of every synthetic image and video frame

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 210, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
}
SHAPES = ("circle", "square", "triangle")

_FONT_3X5 = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
}
GLYPHS = tuple(_FONT_3X5)


def blank(size: int, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = background
    return image


def shape_mask(kind: str, size: int) -> np.ndarray:
    """Boolean (size, size) mask of a filled shape."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    if kind == "square":
        return np.ones((size, size), dtype=bool)
    if kind == "circle":
        centre = size / 2
        return (yy - centre) ** 2 + (xx - centre) ** 2 <= (size / 2) ** 2
    if kind == "triangle":  # apex up
        return np.abs(xx - size / 2) <= yy / 2
    raise ValueError(f"unknown shape {kind!r}; known: {', '.join(SHAPES)}")


def paint(image: np.ndarray, mask: np.ndarray, top: int, left: int, color: tuple[int, int, int]) -> None:
    h, w = mask.shape
    region = image[top : top + h, left : left + w]
    region[mask[: region.shape[0], : region.shape[1]]] = color


def glyph_mask(char: str, scale: int) -> np.ndarray:
    rows = _FONT_3X5[char]
    mask = np.array([[c == "#" for c in row] for row in rows], dtype=bool)
    return mask.repeat(scale, axis=0).repeat(scale, axis=1)


def text_width(text: str, scale: int) -> int:
    return len(text) * 4 * scale - scale


def write(image: np.ndarray, text: str, top: int, left: int, scale: int, color: tuple[int, int, int]) -> None:
    for i, char in enumerate(text):
        paint(image, glyph_mask(char, scale), top, left + i * 4 * scale, color)
