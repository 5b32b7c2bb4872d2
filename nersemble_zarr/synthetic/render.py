"""Ray-cast renders of the synthetic head from any camera: the images, alpha maps and hidden ground truth.

Vectorised numpy: each frame casts one ray per pixel of the head's bounding box against the head ellipsoid
placed like a FLAME mesh, paints it (``appearance.albedo``), shades it (Lambert) and adds mild sensor noise.
The alpha map is anti-aliased from each ray's distance to the silhouette; the background is black.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from .. import catalogue
from ..errors import CatalogueError
from .appearance import Appearance, albedo
from .config import SyntheticConfig
from .head import HEAD_CENTER, HEAD_RADII, ellipsoid_normals
from .scene import camera_params, project, rng_for, tracking

LIGHT_DIRECTION = np.array([0.4, 0.5, 1.0]) / np.linalg.norm([0.4, 0.5, 1.0])  # world, towards the light
AMBIENT = 0.4
NOISE_SIGMA = 1.5 / 255  # sensor noise on the subject, in colour units


def _bounding_box(
    centre: np.ndarray, radius: float, world_2_cam: np.ndarray, intrinsics: np.ndarray, width: int, height: int
) -> tuple[int, int, int, int] | None:
    """Pixel box (x0, x1, y0, y1), end exclusive, around a world-space sphere; None when off-screen."""
    corners = centre + radius * np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)])
    pixels, depth = project(corners, world_2_cam, intrinsics)
    if np.any(depth <= 0):
        return 0, width, 0, height
    x0, y0 = np.floor(pixels.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(pixels.max(axis=0)).astype(int) + 3
    x0, x1, y0, y1 = max(x0, 0), min(x1, width), max(y0, 0), min(y1, height)
    return None if x1 - x0 < 2 or y1 - y0 < 2 else (x0, x1, y0, y1)


def render_frame(
    world_2_cam: np.ndarray,
    intrinsics: np.ndarray,
    width: int,
    height: int,
    rotation_matrix: np.ndarray,
    translation: np.ndarray,
    scale: float,
    colours: Callable[[np.ndarray], np.ndarray],
    noise: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Render the head placed by (R, t, s) into one camera: RGB (H, W, 3) premultiplied by alpha (H, W), uint8.

    ``colours(model_points) -> (N, 3)`` paints surface points; ``noise`` draws the sensor noise.
    """
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    alpha = np.zeros((height, width), dtype=np.uint8)
    centre = scale * rotation_matrix @ HEAD_CENTER + translation
    box = _bounding_box(centre, 1.05 * scale * HEAD_RADII.max(), world_2_cam, intrinsics, width, height)
    if box is None:
        return rgb, alpha
    x0, x1, y0, y1 = box
    ys, xs = np.mgrid[y0:y1, x0:x1]
    rays_camera = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ np.linalg.inv(intrinsics).T
    cam_rotation, cam_translation = world_2_cam[:3, :3], world_2_cam[:3, 3]
    # Into the head's model space: v = R^T (v_world - t) / s, then the unit-sphere space of the ellipsoid.
    origin_model = rotation_matrix.T @ (-cam_rotation.T @ cam_translation - translation) / scale
    directions_model = rays_camera @ cam_rotation @ rotation_matrix / scale
    origin = (origin_model - HEAD_CENTER) / HEAD_RADII
    directions = directions_model / HEAD_RADII
    a = np.einsum("...i,...i", directions, directions)
    closest = -(directions @ origin) / a
    miss = np.linalg.norm(origin + closest[..., None] * directions, axis=-1)  # < 1 where the ray hits
    gradient = np.hypot(*np.gradient(miss))
    coverage = np.clip(0.5 + (1.0 - miss) / np.maximum(gradient, 1e-9), 0.0, 1.0)
    covered = coverage > 0
    # Nearest intersection; rays that just miss use their closest point to the silhouette.
    half_chord = np.sqrt(np.maximum(1.0 - miss[covered] ** 2, 0.0) / a[covered])
    points = origin_model + (closest[covered] - half_chord)[:, None] * directions_model[covered]
    normals_world = ellipsoid_normals(points) @ rotation_matrix.T
    shade = AMBIENT + (1 - AMBIENT) * np.clip(normals_world @ LIGHT_DIRECTION, 0.0, 1.0)
    weight = coverage[covered][:, None]
    colour = (colours(points) * shade[:, None] + noise.normal(scale=NOISE_SIGMA, size=(len(points), 3))) * weight
    window_rgb = np.zeros((y1 - y0, x1 - x0, 3), dtype=np.uint8)
    window_rgb[covered] = np.round(np.clip(colour, 0.0, 1.0) * 255)
    rgb[y0:y1, x0:x1] = window_rgb
    alpha[y0:y1, x0:x1] = np.round(coverage * 255)
    return rgb, alpha


def _check_view(config: SyntheticConfig, benchmark: str, participant: int, sequence: str, serial: str) -> None:
    catalogue.check_serial(serial)
    if participant not in config.participants_of(benchmark):
        raise CatalogueError(f"Participant {participant} is not part of this synthetic {benchmark} benchmark.")
    if sequence not in config.sequences_of(benchmark, participant):
        raise CatalogueError(f"Sequence {sequence!r} is not part of synthetic participant {participant} ({benchmark}).")


def render_views(
    config: SyntheticConfig,
    benchmark: str,
    participant: int,
    sequence: str,
    serial: str,
    *,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (rgb uint8 (H, W, 3), alpha uint8 (H, W)) for frames ``start <= i < stop`` of one sequence
    seen by any of the 16 cameras, hold-out cameras included: the synthetic ground truth."""
    _check_view(config, benchmark, participant, sequence, serial)
    width, height = config.frame_size(benchmark)
    cameras = camera_params(config, benchmark, participant)
    world_2_cam, intrinsics = cameras["world_2_cam"][serial], cameras["intrinsics"][serial]
    params = tracking(config, benchmark, participant, sequence)
    appearance = Appearance.of(config.seed, benchmark, participant)
    n_frames = len(params["frames"])
    stop = n_frames if stop is None else min(stop, n_frames)
    for index in range(start, stop):
        def colours(points: np.ndarray, index: int = index) -> np.ndarray:
            return albedo(points, appearance, params["expression"][index], params["jaw"][index], params["eyes"][index])

        yield render_frame(
            world_2_cam, intrinsics, width, height,
            params["rotation_matrices"][index].astype(np.float64), params["translation"][index].astype(np.float64),
            float(params["scale"].reshape(())), colours,
            rng_for(config.seed, "noise", benchmark, participant, sequence, serial, index),
        )
