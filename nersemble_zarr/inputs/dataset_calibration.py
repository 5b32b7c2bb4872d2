"""The NeRSemble v2 dataset's calibration files, read with the bounded JSON parser:

* ``camera_params.json``: ``world_2_cam`` (a 4x4 OpenCV matrix per camera serial) and ONE ``intrinsics`` 3x3
  matrix shared by all cameras;
* ``color_calibration.json``: per camera serial a 3 x terms colour matrix (terms: a count that Cheung et al.'s
  (2004) polynomial expansion defines).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import catalogue
from ..cameras import first_camera_problem
from ..errors import shown
from .calibration import json_matrix
from .files import read_limited
from .jsontext import MAX_JSON_BYTES, kind_of, parse_json
from .origin import Origin

COLOUR_TERMS = (3, 4, 5, 7, 8, 10)  # the expansions the colour correction implements


def _document(path: Path, kind: str) -> tuple[Origin, dict]:
    origin = Origin.local(path, kind)
    document = parse_json(read_limited(path, origin, MAX_JSON_BYTES), origin)
    if not isinstance(document, dict):
        raise origin.error(f"should hold a JSON object, found {kind_of(document)}")
    return origin, document


def _serials(origin: Origin, by_serial: dict) -> None:
    unknown = sorted(set(by_serial) - set(catalogue.SERIALS))
    if unknown:
        raise origin.error(f"names unknown camera serial {shown(unknown[0])}")


def read_dataset_calibration(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(world_2_cam by serial in file order, the shared 3x3 intrinsics), float64, each camera passing the rule
    every reader and writer of cameras applies (``cameras.camera_problem``)."""
    origin, document = _document(path, "camera calibration")
    for key in ("world_2_cam", "intrinsics"):
        if key not in document:
            raise origin.error(f"has no {key!r} entry")
    extrinsics = document["world_2_cam"]
    if not isinstance(extrinsics, dict):
        raise origin.error(f"is not in the expected layout: its world_2_cam is {kind_of(extrinsics)}, not an object "
                           "of camera serials")
    _serials(origin, extrinsics)
    world_2_cam = {s: json_matrix(origin, m, (4, 4), f"world_2_cam of {s}") for s, m in extrinsics.items()}
    intrinsics = json_matrix(origin, document["intrinsics"], (3, 3), "intrinsics (one 3x3 for all cameras)")
    poses = np.array(list(world_2_cam.values())).reshape(-1, 4, 4)
    found = first_camera_problem(list(world_2_cam), poses, np.broadcast_to(intrinsics, (len(poses), 3, 3)))
    if found is not None:
        raise origin.error(f"has an unusable calibration of camera {found[0]}: {found[1]}")
    return world_2_cam, intrinsics


def read_color_calibration(path: Path) -> dict[str, np.ndarray]:
    """Colour matrices by serial in file order: 3 x terms float64, finite, terms one of ``COLOUR_TERMS``."""
    origin, document = _document(path, "colour calibration")
    _serials(origin, document)
    matrices = {}
    for serial, value in document.items():
        width = len(value[0]) if isinstance(value, list) and value and isinstance(value[0], list) else 0
        if width not in COLOUR_TERMS:
            raise origin.error(f"has a colour matrix for camera {serial} that is not 3 rows of "
                               f"{', '.join(map(str, COLOUR_TERMS))} numbers")
        matrices[serial] = json_matrix(origin, value, (3, width), f"colour matrix of {serial}")
    return matrices
