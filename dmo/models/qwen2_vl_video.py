"""Qwen2-VL's video patches from its image processor's frame patches (pure numpy, no torchvision).

transformers' ``Qwen2VLVideoProcessor`` needs torchvision, which does not load beside the pinned CPU
torch. Its output is rebuilt here from what the image processor (no torchvision) makes of each
frame: the image processor resizes, rescales and normalises a frame exactly as the video processor
does, then writes every patch as ``temporal_patch_size`` copies of itself (a still image is a clip
of identical frames). A video's patch instead stacks ``temporal_patch_size`` *consecutive* frames in
that slot, so one temporal group of frames t..t+tp−1 is the frames' first copies side by side, in
the same (merged-window) patch order. A clip whose length does not divide by the temporal patch size
is padded with its last frame, as the video processor pads it.

Layout of one flattened patch: (channels, temporal_patch_size, patch, patch), C-order, as both
processors write it. ``tests/models/test_hf_video.py`` checks the rebuild against the image
processor on still clips and against a direct patchify of moving ones.
"""

from __future__ import annotations

import numpy as np


def clip_patches(frame_patches: np.ndarray, temporal_patch_size: int, channels: int = 3) -> tuple[np.ndarray, int]:
    """(F, n, C·tp·p·p) patches of F frames, each as the image processor wrote it, to the clip's
    (⌈F/tp⌉·n, C·tp·p·p) video patches and its number of temporal groups ``grid_t``."""
    frames, n, dim = frame_patches.shape
    tp = temporal_patch_size
    if dim % (channels * tp):
        raise ValueError(f"patch dimension {dim} does not split into {channels} channels × {tp} time steps")
    pixels = dim // (channels * tp)  # p·p
    # Each frame's own pixels: the first of its tp identical copies.
    single = frame_patches.reshape(frames, n, channels, tp, pixels)[:, :, :, 0, :]  # (F, n, C, p·p)
    if pad := -frames % tp:
        single = np.concatenate([single, np.repeat(single[-1:], pad, axis=0)], axis=0)
    grid_t = single.shape[0] // tp
    grouped = single.reshape(grid_t, tp, n, channels, pixels).transpose(0, 2, 3, 1, 4)  # (t, n, C, tp, p·p)
    return np.ascontiguousarray(grouped.reshape(grid_t * n, dim)), grid_t
