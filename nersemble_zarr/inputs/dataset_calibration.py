"""The NeRSemble v2 dataset's ``camera_params.json``, read with the bounded JSON parser: ``world_2_cam`` (a 4x4
OpenCV matrix per camera serial) and ONE ``intrinsics`` 3x3 matrix shared by all cameras. Its
``color_calibration.json`` is read by ``nersemble_zarr.inputs.colour_calibration``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import catalogue
from ..cameras import first_camera_problem
from ..errors import shown
from .calibration import calibration_document, json_matrix
from .jsontext import MAX_JSON_BYTES, kind_of, parse_json
from .origin import Origin


def read_dataset_calibration(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(world_2_cam by serial in file order, the shared 3x3 intrinsics), float64, each camera passing the rule
    every reader and writer of cameras applies (``cameras.camera_problem``)."""
    origin = Origin.local(path, "camera calibration")
    return _checked(calibration_document(path, origin), origin)


def parse_dataset_calibration(text: str, origin: Origin) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``read_dataset_calibration`` of a ``camera_params.json``'s text (kept elsewhere, e.g. in a store)."""
    document = parse_json(text.encode("utf-8"), origin, MAX_JSON_BYTES)
    if not isinstance(document, dict) or not {"world_2_cam", "intrinsics"} <= set(document):
        raise origin.error("is not a camera_params.json: it needs the entries world_2_cam and intrinsics")
    return _checked(document, origin)


def _checked(document: dict, origin: Origin) -> tuple[dict[str, np.ndarray], np.ndarray]:
    extrinsics = document["world_2_cam"]
    if not isinstance(extrinsics, dict):
        raise origin.error(f"is not in the expected layout: its world_2_cam is {kind_of(extrinsics)}, not an object "
                           "of camera serials")
    unknown = sorted(set(extrinsics) - set(catalogue.SERIALS))
    if unknown:
        raise origin.error(f"names unknown camera serial {shown(unknown[0])}")
    world_2_cam = {s: json_matrix(origin, m, (4, 4), f"world_2_cam of {s}") for s, m in extrinsics.items()}
    intrinsics = json_matrix(origin, document["intrinsics"], (3, 3), "intrinsics (one 3x3 for all cameras)")
    poses = np.array(list(world_2_cam.values())).reshape(-1, 4, 4)
    found = first_camera_problem(list(world_2_cam), poses, np.broadcast_to(intrinsics, (len(poses), 3, 3)))
    if found is not None:
        raise origin.error(f"has an unusable calibration of camera {found[0]}: {found[1]}")
    return world_2_cam, intrinsics

