"""Area downsampling of frames by an integer factor, and the exact intrinsics of the result.

Pixel-centre convention (OpenCV, as the store's intrinsics): pixel (i, j) is centred at the integer
coordinate (u, v) = (j, i) and covers [j - 0.5, j + 0.5] x [i - 0.5, i + 0.5]. Level pixel (i', j') is the
mean of the s x s source pixels s*i' .. s*i'+s-1 (rows) by s*j' .. s*j'+s-1 (columns), so it covers the same
area as they do and its centre sits at source coordinate s*u' + (s - 1) / 2. Hence
``u' = (u + 0.5) / s - 0.5``: fx' = fx / s, fy' = fy / s, skew' = skew / s, cx' = (cx + 0.5) / s - 0.5,
cy' = (cy + 0.5) / s - 0.5. Rows and columns that do not fill a whole box are cropped at the bottom and right,
which moves no pixel centre, so the intrinsics are the same with or without the crop.
"""

from __future__ import annotations

import numpy as np


def level_size(height: int, width: int, factor: int) -> tuple[int, int]:
    """(height, width) of a frame downsampled by ``factor``: the remainder rows / columns are cropped."""
    return height // factor, width // factor


def pixel_scaling(factor: float) -> np.ndarray:
    """3x3 map from source pixel coordinates (u, v, 1) to level coordinates: u' = (u + 0.5) / s - 0.5."""
    shift = 0.5 / factor - 0.5
    return np.array([[1.0 / factor, 0.0, shift], [0.0, 1.0 / factor, shift], [0.0, 0.0, 1.0]])


def scale_intrinsics(intrinsics: np.ndarray, factor: float) -> np.ndarray:
    """Intrinsics (..., 3, 3) of frames box-downsampled by ``factor`` (see the module docstring)."""
    return pixel_scaling(factor) @ np.asarray(intrinsics, dtype=np.float64)


def _box_sum(frames: np.ndarray, factor: int) -> np.ndarray:
    """Sum of each factor x factor box of frames (T, H, W[, C]) after cropping H, W to multiples of factor:
    the rows of each box first (whole rows, contiguous), then the columns of those row sums."""
    height, width = level_size(frames.shape[1], frames.shape[2], factor)
    dtype = np.uint16 if factor * factor * 255 <= np.iinfo(np.uint16).max else np.uint32
    rows = frames[:, 0 : height * factor : factor, : width * factor].astype(dtype)
    for row in range(1, factor):
        rows += frames[:, row : height * factor : factor, : width * factor]
    total = rows[:, :, 0::factor].copy()
    for column in range(1, factor):
        total += rows[:, :, column::factor]
    return total


def _rounded_mean(total: np.ndarray, count: int) -> np.ndarray:
    """``total / count`` rounded to the nearest integer (halves up), as uint8; in place on ``total``."""
    total += count // 2
    if count & (count - 1) == 0:  # a power of two: a shift, far cheaper than an integer division
        total >>= count.bit_length() - 1
    else:
        total //= count
    return total.astype(np.uint8)


def block_mean(frames: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each ``factor`` x ``factor`` box of uint8 frames (T, H, W[, C]), rounded to the nearest integer
    (halves up); rows and columns that do not fill a box are cropped at the bottom and right."""
    return _rounded_mean(_box_sum(frames, factor), factor * factor)


def downsample_frames(
    images: np.ndarray, alpha: np.ndarray | None, factor: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Area-average RGB frames (T, H, W, 3) and their alpha (T, H, W) by an integer ``factor``.

    The store's RGB is premultiplied by alpha (the benchmark removed the background: colour * alpha over
    black). The alpha-aware average of straight colour C, sum(C * a) / sum(a), times the averaged alpha
    sum(a) / n is sum(C * a) / n: the plain mean of the premultiplied values. So RGB and alpha are both box
    means (rounded to the nearest integer) and the result is premultiplied like its source. RGB where the
    source alpha is 0 (video codec noise on the removed background) counts as black, and RGB is black wherever
    the level's alpha is 0, so a level computed from the level above equals one computed from level 1 up to
    rounding. Without alpha (None) RGB is a plain box mean.
    """
    if alpha is None:
        return block_mean(images, factor), None
    images = np.where((alpha > 0)[..., None], images, 0).astype(np.uint8, copy=False)
    level_images = block_mean(images, factor)
    level_alpha = block_mean(alpha, factor)
    level_images[level_alpha == 0] = 0
    return level_images, level_alpha
