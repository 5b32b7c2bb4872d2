"""Accepted pixel values of predicted frames, and their conversion to the uint8 RGB the encoder takes."""

from __future__ import annotations

import numpy as np

from ..errors import SubmissionError


def check_dtype(dtype: np.dtype, video: str) -> np.dtype:
    """Accept uint8 (0..255) or floating point (0..1) frames, else raise naming the video."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8 or np.issubdtype(dtype, np.floating):
        return dtype
    raise SubmissionError(
        f"Frames of {video} have dtype {dtype}; expected uint8 (0..255) or float (0..1) RGB images."
    )


def to_uint8(block: np.ndarray, video: str, first_frame: int) -> np.ndarray:
    """Convert a block of frames (k, H, W, 3) to uint8; floats must lie in [0, 1] (NaN is refused).

    ``first_frame`` is the index of the block's first frame in the video, used in the error message.
    """
    if check_range(block, video, first_frame) == np.uint8:
        return block
    return np.rint(block * 255).astype(np.uint8)


def check_range(block: np.ndarray, video: str, first_frame: int) -> np.dtype:
    """Check a block of frames (k, H, W, 3) is uint8, or float in [0, 1] without NaN; return its dtype."""
    dtype = check_dtype(block.dtype, video)
    if dtype == np.uint8:
        return dtype
    inside = (block >= 0) & (block <= 1)  # False for NaN
    if not inside.all():
        frame = int(np.argmin(inside.reshape(len(block), -1).all(axis=1)))
        values = block[frame]
        finite = values[np.isfinite(values)]
        found = "NaN values" if np.isnan(values).any() else "values"
        span = f" (min {finite.min():.4g}, max {finite.max():.4g})" if finite.size else ""
        raise SubmissionError(
            f"Frame {first_frame + frame} of {video} has {found} outside [0, 1]{span}; "
            "clip float images to [0, 1] or pass uint8."
        )
    return dtype
