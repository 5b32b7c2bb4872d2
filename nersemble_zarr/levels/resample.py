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

import functools
import threading

import numpy as np

from ..jit import compile_kernel


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


def block_mean(frames: np.ndarray, factor: int, out: np.ndarray | None = None) -> np.ndarray:
    """Mean of each ``factor`` x ``factor`` box of uint8 frames (T, H, W[, C]), rounded to the nearest integer
    (halves up); rows and columns that do not fill a box are cropped at the bottom and right.

    One pass of a compiled kernel (:func:`_compile_block_mean`) over the frames as they are, without copying them
    when each pixel's channels are adjacent (a decoder's padded rows included). ``out``: a C-contiguous uint8 array
    of the result's shape to write into (a frame loop's one buffer) instead of a new one."""
    four = frames if frames.ndim == 4 else frames[..., None]
    count, height, width, channels = four.shape
    if four.dtype != np.uint8:
        raise TypeError(f"block_mean takes uint8 frames, not {four.dtype}.")
    if four.strides[2] != channels or (channels > 1 and four.strides[3] != 1):
        four = np.ascontiguousarray(four)
    rows = np.lib.stride_tricks.as_strided(four, (count, height, width * channels), (*four.strides[:2], 1),
                                           writeable=False)
    level_height, level_width = level_size(height, width, factor)
    shape = (count, level_height, level_width) + ((channels,) if frames.ndim == 4 else ())
    if out is None:
        out = np.empty(shape, dtype=np.uint8)
    elif out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"block_mean writes a C-contiguous uint8 array of shape {shape}, not {out.dtype} "
                         f"{out.shape}.")
    averaged = out.reshape(count, level_height, level_width * channels)
    if averaged.size:
        # a box column's sum of ``factor`` values: uint16 while it cannot overflow (twice the lanes of uint32)
        column = np.empty(level_width * channels * factor,
                          dtype=np.uint16 if factor * 255 <= np.iinfo(np.uint16).max else np.uint32)
        _block_mean_kernel()(rows, factor, channels, averaged, column)
    return out


def _block_mean_kernel():
    """The compiled kernel (:func:`_compile_block_mean`), built once per process even when threads ask at once."""
    with _KERNEL_LOCK:
        return _compile_block_mean()


_KERNEL_LOCK = threading.Lock()


@functools.cache
def _compile_block_mean():
    """:func:`_block_mean_rows` compiled (numba, releasing the GIL, so the threads of a threaded scheduler average
    frames at the same time) for both column sums (uint16, uint32), any row layout; cached on disk where numba
    finds a writable folder, else compiled once per process (:mod:`nersemble_zarr.jit`; both signatures: about
    1 s of CPU)."""
    import numba  # here: importing numba takes 0.2 s

    rows = numba.types.Array(numba.uint8, 3, "A", readonly=True)
    signatures = [numba.void(rows, numba.intp, numba.intp, numba.uint8[:, :, ::1], column[::1])
                  for column in (numba.uint16, numba.uint32)]
    return compile_kernel(_block_mean_rows, signatures)


def _block_mean_rows(rows, factor, channels, out, column):
    """The kernel of :func:`block_mean` (numba compiles it: :func:`_compile_block_mean`): ``rows`` the frames as
    (T, H, W * C) uint8, ``out`` (T, H // factor, (W // factor) * C), ``column`` a scratch row of
    (W // factor) * C * factor sums (uint16 when ``factor * 255`` fits, else uint32). Per level row, the ``factor``
    source rows are summed into ``column`` (contiguous, vectorised), then each box's ``factor`` pixels of that sum
    are added and rounded: ``(sum + count // 2) // count`` with ``count = factor ** 2`` (a shift when it is a power
    of two)."""
    frames, height, out_width = out.shape
    width = out_width * factor  # the cropped source row, in values
    pixels = out_width // channels
    count = factor * factor
    half = count // 2
    shift = -1  # log2(count) when count is a power of two
    if count & (count - 1) == 0:
        shift = 0
        while (1 << shift) < count:
            shift += 1
    for t in range(frames):
        for i in range(height):
            first = rows[t, i * factor]
            for x in range(width):
                column[x] = first[x]
            for r in range(i * factor + 1, i * factor + factor):
                row = rows[t, r]
                for x in range(width):
                    column[x] += row[x]
            line = out[t, i]
            if channels == 3:
                for j in range(pixels):
                    red, green, blue = half, half, half
                    at = j * factor * 3
                    for _ in range(factor):
                        red += column[at]
                        green += column[at + 1]
                        blue += column[at + 2]
                        at += 3
                    if shift >= 0:
                        line[3 * j], line[3 * j + 1], line[3 * j + 2] = red >> shift, green >> shift, blue >> shift
                    else:
                        line[3 * j], line[3 * j + 1], line[3 * j + 2] = red // count, green // count, blue // count
            else:
                for j in range(pixels):
                    for c in range(channels):
                        total = half
                        at = j * factor * channels + c
                        for _ in range(factor):
                            total += column[at]
                            at += channels
                        line[j * channels + c] = total >> shift if shift >= 0 else total // count


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
