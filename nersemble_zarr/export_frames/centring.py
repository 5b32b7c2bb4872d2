"""Moving each camera's principal point to the image centre by whole-pixel crop and pad, for GaussianAvatars.

GaussianAvatars (like 3D Gaussian splatting) reads only the field of view and puts the principal point at
``((w - 1) / 2, (h - 1) / 2)`` in pixel coordinates with centres at integers. Shifting a camera's frames by the
whole pixels ``(dx, dy) = round((cx, cy) - centre)`` (new pixel ``(x, y)`` = old pixel ``(x + dx, y + dy)``,
uncovered pixels filled with the background) gives ``cx' = cx - dx``, ``cy' = cy - dy``: within half a pixel of
the centre, with the image size kept. The residual ``cx' - centre`` is reported; nothing is resampled.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import schema
from .plan import ExportPlan


def principal_point_shifts(plan: ExportPlan) -> np.ndarray:
    """Whole-pixel shifts (serial, 2) that bring each camera's (cx, cy) nearest the image centre."""
    intrinsics = plan.dataset[schema.INTRINSICS].values
    centre = _centre(plan)
    return np.rint(intrinsics[:, :2, 2] - centre).astype(np.int64)


def centred_plan(plan: ExportPlan, shifts: np.ndarray) -> ExportPlan:
    """The plan with intrinsics of the shifted frames: cx, cy minus the shifts."""
    intrinsics = np.array(plan.dataset[schema.INTRINSICS].values, dtype=np.float64, copy=True)
    intrinsics[:, :2, 2] -= shifts
    dataset = plan.dataset.copy()
    dataset[schema.INTRINSICS] = (plan.dataset[schema.INTRINSICS].dims, intrinsics)
    return replace(plan, dataset=dataset)


def principal_point_residual(plan: ExportPlan) -> float:
    """The largest distance (pixels, per axis) of a camera's principal point from the image centre."""
    intrinsics = plan.dataset[schema.INTRINSICS].values
    return float(np.abs(intrinsics[:, :2, 2] - _centre(plan)).max())


def shift_picture(picture: np.ndarray, shift: tuple[int, int], fill: int) -> np.ndarray:
    """``out[y, x] = picture[y + dy, x + dx]`` where that pixel exists, ``fill`` elsewhere (same size)."""
    dx, dy = shift
    if dx == 0 and dy == 0:
        return picture
    height, width = picture.shape[:2]
    out = np.full_like(picture, fill)
    source_y, target_y = _overlap(dy, height)
    source_x, target_x = _overlap(dx, width)
    out[target_y, target_x] = picture[source_y, source_x]
    return out


def _overlap(shift: int, size: int) -> tuple[slice, slice]:
    """Source and target slices of one axis for ``target[i] = source[i + shift]``."""
    if shift >= 0:
        return slice(shift, size), slice(0, max(size - shift, 0))
    return slice(0, max(size + shift, 0)), slice(-shift, size)


def _centre(plan: ExportPlan) -> np.ndarray:
    width, height = int(plan.dataset.attrs[schema.WIDTH_ATTR]), int(plan.dataset.attrs[schema.HEIGHT_ATTR])
    return np.array([(width - 1) / 2, (height - 1) / 2])
