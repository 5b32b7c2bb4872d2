"""``camera_params.json``: per camera serial a 4x4 OpenCV world-to-camera matrix and a 3x3 intrinsic matrix.

Each matrix must be a list of rows of JSON numbers (a string such as "1.5" is refused, not converted);
after the cast to float64 every entry must be finite and every camera pass ``cameras.camera_problem`` (a rigid
world-to-camera matrix, sane intrinsics), the rule every writer of cameras applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import catalogue
from ..cameras import first_camera_problem
from ..errors import shown
from .files import read_limited
from .jsontext import MAX_JSON_BYTES, kind_of, parse_json
from .origin import Origin


@dataclass(frozen=True)
class Cameras:
    """The calibration of one participant: serials with OpenCV world-to-camera and intrinsic matrices."""

    serials: tuple[str, ...]
    world_2_cam: np.ndarray  # (n, 4, 4) float64
    intrinsics: np.ndarray  # (n, 3, 3) float64

    def subset(self, serials: tuple[str, ...]) -> "Cameras":
        index = [self.serials.index(s) for s in serials]
        return Cameras(tuple(serials), self.world_2_cam[index], self.intrinsics[index])


def calibration_document(path: Path, origin: Origin) -> dict:
    """A ``camera_params.json`` parsed within the JSON limits: an object with ``world_2_cam`` and ``intrinsics``."""
    document = parse_json(read_limited(path, origin, MAX_JSON_BYTES), origin)
    if not isinstance(document, dict):
        raise origin.error(f"should hold a JSON object, found {kind_of(document)}")
    for key in ("world_2_cam", "intrinsics"):
        if key not in document:
            raise origin.error(f"has no {key!r} entry")
    return document


def read_calibration(path: Path) -> Cameras:
    """Read and check a ``camera_params.json``: finite 4x4 rigid extrinsics, finite sane 3x3 intrinsics."""
    origin = Origin.local(path)
    document = calibration_document(path, origin)
    for key in ("world_2_cam", "intrinsics"):
        if not isinstance(document[key], dict):
            raise origin.error(f"is not in the expected layout: its {key} is {kind_of(document[key])}, not an "
                               "object of camera serials")
    extrinsics, intrinsics = document["world_2_cam"], document["intrinsics"]
    unknown = sorted(set(extrinsics) - set(catalogue.SERIALS))
    if unknown:
        raise origin.error(f"names unknown camera serial {shown(unknown[0])}")
    serials = tuple(s for s in catalogue.SERIALS if s in extrinsics)
    missing = [s for s in serials if s not in intrinsics]
    if missing:
        raise origin.error(f"has no intrinsics for camera {missing[0]}")
    world_2_cam = np.stack([json_matrix(origin, extrinsics[s], (4, 4), f"world_2_cam of {s}") for s in serials])
    intrinsic = np.stack([json_matrix(origin, intrinsics[s], (3, 3), f"intrinsics of {s}") for s in serials])
    found = first_camera_problem(serials, world_2_cam, intrinsic)
    if found is not None:
        raise origin.error(f"has an unusable calibration of camera {found[0]}: {found[1]}")
    return Cameras(serials, world_2_cam, intrinsic)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_matrix(origin: Origin, value: object, shape: tuple[int, int], what: str) -> np.ndarray:
    """A matrix of JSON numbers, cast to float64 and checked finite after the cast."""
    rows = value if isinstance(value, list) and all(isinstance(row, list) for row in value) else None
    if rows is None or not all(_is_number(entry) for row in rows for entry in row):
        raise origin.error(f"has a non-numeric {what}; expected {shape[0]} rows of {shape[1]} numbers")
    widths = sorted({len(row) for row in rows})
    found = (len(rows), *widths) if len(widths) <= 1 else f"{len(rows)} rows of {widths[0]} to {widths[-1]} numbers"
    if found != shape:
        raise origin.error(f"has {what} of shape {found}; expected {shape}")
    matrix = np.array(rows, dtype=np.float64)
    if not np.all(np.isfinite(matrix)):
        raise origin.error(f"has NaN or infinite values in {what}")
    return matrix
