"""Readers for the fetched assets (official folder layout), each validating what it returns.

Every problem is an InputDataError naming the file: missing, unreadable, wrong keys, shapes or values.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import catalogue, schema
from ..errors import InputDataError


@dataclass(frozen=True)
class Cameras:
    """The calibration of one participant: serials with OpenCV world-to-camera and intrinsic matrices."""

    serials: tuple[str, ...]
    world_2_cam: np.ndarray  # (n, 4, 4) float64
    intrinsics: np.ndarray  # (n, 3, 3) float64

    def subset(self, serials: tuple[str, ...]) -> "Cameras":
        index = [self.serials.index(s) for s in serials]
        return Cameras(tuple(serials), self.world_2_cam[index], self.intrinsics[index])


def read_json(path: Path) -> dict:
    """Load a JSON object from ``path`` or raise an InputDataError naming it."""
    if not path.is_file():
        raise InputDataError(f"The file {path} is missing; run `nersemble-zarr fetch` first.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputDataError(f"The file {path} is not valid JSON ({error}); fetch it again.") from error
    if not isinstance(data, dict):
        raise InputDataError(f"The file {path} should hold a JSON object, found {type(data).__name__}.")
    return data


def nvs_timesteps(root: Path) -> dict[int, tuple[str, np.ndarray]]:
    """participant -> (sequence name, original frame indices) from ``ROOT/nvs/metadata.json``."""
    path = root / "nvs" / catalogue.METADATA_FILE
    data = read_json(path)
    result: dict[int, tuple[str, np.ndarray]] = {}
    try:
        for key, entry in data["sequences"].items():
            timesteps = np.asarray(entry["timesteps"], dtype=np.int64)
            if timesteps.ndim != 1 or len(timesteps) == 0:
                raise ValueError(f"participant {key} has no timesteps")
            result[int(key)] = (str(entry["sequence_name"]), timesteps)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InputDataError(
            f"The file {path} does not have the expected form "
            f'{{"sequences": {{"388": {{"sequence_name": ..., "timesteps": [...]}}}}}} ({error}).'
        ) from error
    return result


def mono_frame_counts(root: Path) -> dict[int, dict[str, int]]:
    """participant -> sequence -> number of frames, from ``ROOT/mono_flame_avatar/metadata.json``."""
    path = root / "mono_flame_avatar" / catalogue.METADATA_FILE
    data = read_json(path)
    try:
        return {
            int(p): {str(s): int(meta["n_frames"]) for s, meta in entry["sequences_metadata"].items()}
            for p, entry in data["participants_metadata"].items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InputDataError(
            f"The file {path} does not have the expected form "
            f'{{"participants_metadata": {{"393": {{"sequences_metadata": {{"FREE": {{"n_frames": N}}}}}}}}}} ({error}).'
        ) from error


def read_cameras(path: Path) -> Cameras:
    """Read and check ``camera_params.json``: finite 4x4 invertible extrinsics, finite 3x3 intrinsics."""
    data = read_json(path)
    try:
        extrinsics, intrinsics = data["world_2_cam"], data["intrinsics"]
    except KeyError as error:
        raise InputDataError(f"The file {path} has no {error.args[0]!r} entry.") from error
    serials = tuple(s for s in catalogue.SERIALS if s in extrinsics)
    unknown = sorted(set(extrinsics) - set(catalogue.SERIALS))
    if unknown:
        raise InputDataError(f"The file {path} names unknown camera serial {unknown[0]!r}.")
    missing = [s for s in serials if s not in intrinsics]
    if missing:
        raise InputDataError(f"The file {path} has no intrinsics for camera {missing[0]}.")
    world_2_cam = np.stack([_matrix(path, extrinsics[s], (4, 4), f"world_2_cam of {s}") for s in serials])
    intrinsic = np.stack([_matrix(path, intrinsics[s], (3, 3), f"intrinsics of {s}") for s in serials])
    for serial, matrix in zip(serials, world_2_cam):
        if abs(np.linalg.det(matrix[:3, :3])) < 1e-8:
            raise InputDataError(f"The file {path} has a non-invertible world_2_cam matrix for camera {serial}.")
    return Cameras(serials, world_2_cam, intrinsic)


def _matrix(path: Path, value, shape: tuple[int, int], what: str) -> np.ndarray:
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputDataError(f"The file {path} has a non-numeric {what}.") from error
    if matrix.shape != shape:
        raise InputDataError(f"The file {path} has {what} of shape {matrix.shape}; expected {shape}.")
    if not np.all(np.isfinite(matrix)):
        raise InputDataError(f"The file {path} has NaN or infinite values in {what}.")
    return matrix


_TRACKING_SHAPES = {
    "shape": (1, schema.FLAME_N_SHAPE),
    "expression": ("T", schema.FLAME_N_EXPRESSION),
    "rotation": ("T", 3),
    "rotation_matrices": ("T", 3, 3),
    "translation": ("T", 3),
    "jaw": ("T", 3),
    "neck": ("T", 3),
    "eyes": ("T", 6),
    "frames": ("T",),
    "scale": (1, 1),
}


def read_tracking(path: Path) -> dict[str, np.ndarray]:
    """Read a FLAME tracking npz (pickles disabled) and check its keys, shapes and values."""
    if not path.is_file():
        raise InputDataError(f"The tracking file {path} is missing; fetch the flame2023_tracking asset.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise InputDataError(f"The tracking file {path} is not a readable npz ({error}); fetch it again.") from error
    missing = [key for key in _TRACKING_SHAPES if key not in arrays]
    if missing:
        raise InputDataError(f"The tracking file {path} lacks the key {missing[0]!r}.")
    n_timesteps = len(arrays["frames"])
    for key, expected in _TRACKING_SHAPES.items():
        expected = tuple(n_timesteps if size == "T" else size for size in expected)
        if arrays[key].shape != expected:
            raise InputDataError(
                f"The tracking file {path} has {key} of shape {arrays[key].shape}; expected {expected}."
            )
        if not np.issubdtype(arrays[key].dtype, np.number):
            raise InputDataError(f"The tracking file {path} has non-numeric {key} ({arrays[key].dtype}).")
        if not np.all(np.isfinite(arrays[key])):
            raise InputDataError(f"The tracking file {path} has NaN or infinite values in {key}.")
    return {key: arrays[key] for key in _TRACKING_SHAPES}


def read_pointcloud(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points, colors and normals of a .pcd file as float32 (n, 3) arrays (zeros where absent)."""
    import open3d  # imported here: heavy, and needs libusb

    if not path.is_file() or path.stat().st_size == 0:
        raise InputDataError(f"The point cloud {path} is missing or empty; fetch it again.")
    cloud = open3d.io.read_point_cloud(str(path))
    points = np.asarray(cloud.points, dtype=np.float32)
    if len(points) == 0:
        raise InputDataError(f"The point cloud {path} holds no points; fetch it again.")
    colors = np.asarray(cloud.colors, dtype=np.float32) if cloud.has_colors() else np.zeros_like(points)
    normals = np.asarray(cloud.normals, dtype=np.float32) if cloud.has_normals() else np.zeros_like(points)
    return points, colors, normals
