"""Where things are in the synthetic scene: the 16 cameras, the head's motion (FLAME tracking) and the
model-to-world placement the benchmark uses for FLAME meshes.

World space is FLAME's: metres, y up, the face looking towards +z, the head near the origin. Cameras use the
OpenCV convention (x right, y down, z forward). Every value derives from the config's seed and the names of
what it belongs to, so any one file can be regenerated on its own.
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy.spatial.transform import Rotation

from .. import catalogue
from .config import FRAME_OFFSET, FRAME_STRIDE, SyntheticConfig

# Nominal rig: (azimuth, elevation) in degrees of each camera around the head; azimuth > 0 towards the
# subject's left (+x). Two rows of cameras on an arc plus one above; the mono train camera looks at the face.
CAMERA_ANGLES: dict[str, tuple[float, float]] = {
    "222200042": (-80.0, 15.0), "222200044": (-55.0, 15.0), "222200046": (-30.0, 15.0),
    "222200040": (-10.0, 15.0), "222200036": (10.0, 15.0), "222200048": (30.0, 15.0),
    "220700191": (55.0, 15.0), "222200041": (80.0, 15.0), "222200037": (0.0, -5.0),
    "222200038": (-70.0, -5.0), "222200047": (-42.0, -5.0), "222200043": (-18.0, -5.0),
    "222200049": (18.0, -5.0), "222200039": (42.0, -5.0), "222200045": (70.0, -5.0),
    "221501007": (0.0, 35.0),
}
CAMERA_DISTANCE = 1.0  # metres from the head
# Focal length in pixels per pixel of frame width: the head fills about half of the frame.
FOCAL_PER_WIDTH = {"nvs": 3.2, "mono_flame_avatar": 3.0, "svfr": 3.2}


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A random generator that depends only on the seed and the given names/numbers (order matters)."""
    entropy = [seed] + [zlib.crc32(str(key).encode()) for key in keys]
    return np.random.default_rng(entropy)


# ---------------------------------------------------------------- cameras
def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """4x4 OpenCV world-to-camera matrix of a camera at ``position`` looking at ``target`` with world y up."""
    forward = target - position
    forward /= np.linalg.norm(forward)
    down = np.array([0.0, -1.0, 0.0])
    right = np.cross(down, forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    world_2_cam = np.eye(4)
    world_2_cam[:3, :3] = rotation
    world_2_cam[:3, 3] = -rotation @ position
    return world_2_cam


def rig_pose(rng: np.random.Generator, serial: str) -> np.ndarray:
    """4x4 OpenCV world-to-camera matrix of one rig camera, its nominal place jittered like a recalibrated rig."""
    azimuth, elevation = np.radians(np.array(CAMERA_ANGLES[serial]) + rng.uniform(-1.5, 1.5, 2))
    distance = CAMERA_DISTANCE + rng.uniform(-0.03, 0.03)
    position = distance * np.array(
        [np.sin(azimuth) * np.cos(elevation), np.sin(elevation), np.cos(azimuth) * np.cos(elevation)]
    )
    return look_at(position, rng.uniform(-0.01, 0.01, 3))


def camera_params(config: SyntheticConfig, benchmark: str, participant: int) -> dict[str, dict[str, np.ndarray]]:
    """Calibration of all 16 cameras for one participant: ``{"world_2_cam": {serial: 4x4},
    "intrinsics": {serial: 3x3}}``, jittered per participant like a real recalibrated rig."""
    width, height = config.frame_size(benchmark)
    rng = rng_for(config.seed, "cameras", benchmark, participant)
    world_2_cam, intrinsics = {}, {}
    for serial in catalogue.SERIALS:
        world_2_cam[serial] = rig_pose(rng, serial)
        focal = FOCAL_PER_WIDTH[benchmark] * width * rng.uniform(0.98, 1.02)
        centre = np.array([width, height]) / 2 + rng.uniform(-0.01, 0.01, 2) * width
        intrinsics[serial] = np.array([[focal, 0.0, centre[0]], [0.0, focal, centre[1]], [0.0, 0.0, 1.0]])
    return {"world_2_cam": world_2_cam, "intrinsics": intrinsics}


def project(points: np.ndarray, world_2_cam: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project world points (..., 3) to pixel coordinates (..., 2) (OpenCV, pixel centres at integers) and depth."""
    camera = points @ world_2_cam[:3, :3].T + world_2_cam[:3, 3]
    depth = camera[..., 2]
    pixels = camera @ intrinsics.T
    return pixels[..., :2] / depth[..., None], depth


# ---------------------------------------------------------------- FLAME placement
def rotation_matrices(rotation: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of XYZ Euler angles (..., 3), as the benchmark computes them."""
    rotation = np.asarray(rotation)
    flat = Rotation.from_euler("XYZ", rotation.reshape(-1, 3)).as_matrix()
    return flat.reshape(rotation.shape[:-1] + (3, 3))


def model_to_world(
    vertices: np.ndarray, rotation_matrix: np.ndarray, translation: np.ndarray, scale: float | np.ndarray
) -> np.ndarray:
    """Place model-space points in the world like a FLAME mesh: ``v_world = scale * R @ v + translation``.

    ``vertices`` (..., N, 3) with ``rotation_matrix`` (..., 3, 3) and ``translation`` (..., 3) broadcast
    over the leading dimensions; ``scale`` is a number (the tracking's (1, 1) array works too).
    """
    scale = float(np.asarray(scale).reshape(()))
    rotated = np.einsum("...ij,...nj->...ni", rotation_matrix, vertices)
    return scale * rotated + np.asarray(translation)[..., None, :]


# ---------------------------------------------------------------- head motion
def original_frames(n_frames: int) -> np.ndarray:
    """Original capture frame index of each of ``n_frames`` benchmark frames (int64)."""
    return FRAME_OFFSET + FRAME_STRIDE * np.arange(n_frames, dtype=np.int64)


def smooth_curves(rng: np.random.Generator, n_frames: int, amplitudes: np.ndarray) -> np.ndarray:
    """(n_frames, len(amplitudes)) smooth signals: two sinusoids each, 0.2-0.8 cycles per 100 frames
    (per sequence when it is shorter), so short test sequences still move visibly."""
    phase = np.arange(n_frames) / np.clip(n_frames - 1, 1, 100)
    n = len(amplitudes)
    frequencies = rng.uniform(0.2, 0.8, (2, n))
    offsets = rng.uniform(0.0, 2 * np.pi, (2, n))
    weights = rng.uniform(0.3, 0.7, n)
    waves = np.sin(2 * np.pi * frequencies[:, None, :] * phase[None, :, None] + offsets[:, None, :])
    return amplitudes * (weights * waves[0] + (1 - weights) * waves[1])


def tracking(config: SyntheticConfig, benchmark: str, participant: int, sequence: str) -> dict[str, np.ndarray]:
    """FLAME tracking of one sequence with the keys, shapes and dtypes of ``flame2023_tracking_v2.npz``.

    Smooth over time and small enough that the head stays in view of every camera. NVS sequences get the
    same kind of motion (it drives their renders and point clouds) although the server has no NVS tracking.
    """
    n_frames = config.n_frames_of(benchmark, participant, sequence)
    rng = rng_for(config.seed, "tracking", benchmark, participant, sequence)
    identity = rng_for(config.seed, "identity", benchmark, participant)
    rotation = smooth_curves(rng, n_frames, np.array([0.15, 0.35, 0.08])).astype(np.float32)
    translation = smooth_curves(rng, n_frames, np.array([0.015, 0.01, 0.015]))
    expression = smooth_curves(rng, n_frames, 1.5 / (1.0 + np.arange(100) / 4))
    jaw = smooth_curves(rng, n_frames, np.array([0.12, 0.02, 0.01]))
    jaw[:, 0] += 0.12  # the jaw only opens: 0 to 0.24 rad
    arrays = {
        "shape": (identity.normal(size=(1, 300)) * 0.5),
        "expression": expression,
        "rotation": rotation,
        "rotation_matrices": rotation_matrices(rotation),
        "translation": translation,
        "jaw": jaw,
        "frames": original_frames(n_frames),
        "scale": np.array([[identity.uniform(0.95, 1.05)]]),
        "neck": smooth_curves(rng, n_frames, np.array([0.03, 0.03, 0.01])),
        "eyes": np.tile(smooth_curves(rng, n_frames, np.array([0.1, 0.25, 0.0])), (1, 2)),
    }
    return {key: value if key == "frames" else value.astype(np.float32) for key, value in arrays.items()}
