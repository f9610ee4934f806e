"""Procedural video domains: clips of FRAMES 32×32 frames whose answer needs more than one frame.

Each generator returns ``(frames (FRAMES, 32, 32, 3) uint8, question, answer)``. No single frame
gives the answer away: a count is spread over frames that show one shape or none, a motion is a
position's change, a change is a difference between the first and the last frame.
"""

from __future__ import annotations

import numpy as np

from dmo.data import draw

FRAMES = 4
DIRECTIONS = ("left", "right", "up", "down")
CHANGES = ("color", "shape", "place")


def _shape_frame(kind: str, color: str, top: int, left: int, size: int = 9) -> np.ndarray:
    frame = draw.blank(draw.CANVAS)
    draw.paint(frame, draw.shape_mask(kind, size), top, left, draw.COLORS[color])
    return frame


def _anywhere(rng: np.random.Generator, size: int = 9) -> tuple[int, int]:
    top, left = (int(v) for v in rng.integers(0, draw.CANVAS - size + 1, size=2))
    return top, left


def video_count(rng: np.random.Generator) -> tuple[np.ndarray, str, str]:
    """How many shapes appeared: one to FRAMES frames each show one shape, the others none."""
    count = int(rng.integers(1, FRAMES + 1))
    shown = {int(f) for f in rng.choice(FRAMES, size=count, replace=False)}
    frames = []
    for index in range(FRAMES):
        if index in shown:
            frames.append(_shape_frame(str(rng.choice(draw.SHAPES)), str(rng.choice(list(draw.COLORS))),
                                       *_anywhere(rng)))
        else:
            frames.append(draw.blank(draw.CANVAS))
    return np.stack(frames), "how many shapes appeared in the clip?", str(count)


def video_motion(rng: np.random.Generator) -> tuple[np.ndarray, str, str]:
    """Which way a dot moved: the same dot, a few pixels further each frame."""
    direction = str(rng.choice(DIRECTIONS))
    color = str(rng.choice(list(draw.COLORS)))
    size, step = 6, int(rng.integers(4, 7))
    travel = step * (FRAMES - 1)
    low, high = 0, draw.CANVAS - size
    along = int(rng.integers(low, high - travel + 1))  # the start, so the whole path stays on the canvas
    across = int(rng.integers(low, high + 1))
    frames = []
    for index in range(FRAMES):
        offset = index * step
        if direction in ("right", "down"):
            position = along + offset
        else:
            position = along + travel - offset
        top, left = (across, position) if direction in ("left", "right") else (position, across)
        frames.append(_shape_frame("circle", color, top, left, size))
    return np.stack(frames), "which way did the dot move?", direction


def video_change(rng: np.random.Generator) -> tuple[np.ndarray, str, str]:
    """What changed between the first and the last frame: the colour, the shape or the place."""
    change = str(rng.choice(CHANGES))
    kind, color = str(rng.choice(draw.SHAPES)), str(rng.choice(list(draw.COLORS)))
    top, left = _anywhere(rng)
    last_kind, last_color, last_place = kind, color, (top, left)
    if change == "color":
        last_color = str(rng.choice([c for c in draw.COLORS if c != color]))
    elif change == "shape":
        last_kind = str(rng.choice([k for k in draw.SHAPES if k != kind]))
    else:
        while abs(last_place[0] - top) + abs(last_place[1] - left) < 8:  # a move the eye can see
            last_place = _anywhere(rng)
    first, last = _shape_frame(kind, color, top, left), _shape_frame(last_kind, last_color, *last_place)
    switch = int(rng.integers(1, FRAMES))  # the frame from which the clip shows the changed shape
    frames = [first if index < switch else last for index in range(FRAMES)]
    return np.stack(frames), "what changed between the first and the last frame?", change


VIDEO_GENERATORS = {
    "video_count": video_count,
    "video_motion": video_motion,
    "video_change": video_change,
}
