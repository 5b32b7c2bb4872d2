"""Synthetic SVFR images: one render of the head per image key, seen by the key's camera, on a plain backdrop.

Each key (sequence, timestep, serial) gets its own head pose and expression (drawn from the seed and the key),
the participant's look, and the camera of its serial in the synthetic rig, so images vary as the real ones do.
"""

from __future__ import annotations

import numpy as np

from .. import catalogue
from ..catalogue import ImageKey
from ..errors import CatalogueError
from .appearance import Appearance, albedo
from .config import SyntheticConfig
from .render import render_frame
from .scene import camera_params, rng_for, rotation_matrices

BACKDROP_RANGE = (0.25, 0.75)  # grey level range of the backdrop behind the head


def svfr_flame_parameters(config: SyntheticConfig, participant: int, key: ImageKey) -> dict[str, np.ndarray]:
    """The FLAME parameters behind one synthetic SVFR image (float32, one frame): shape (300,), expression
    (100,), rotation, translation, jaw, neck (3,), eyes (6,), rotation_matrix (3, 3) and scale ()."""
    identity = rng_for(config.seed, "identity", catalogue.SVFR, participant)
    rng = rng_for(config.seed, "svfr pose", participant, *key)
    rotation = rng.uniform(-1, 1, 3) * np.array([0.15, 0.35, 0.08])
    jaw = np.array([rng.uniform(0.0, 0.24), rng.uniform(-0.02, 0.02), 0.0])
    params = {
        "shape": identity.normal(size=300) * 0.5,
        "scale": np.array(identity.uniform(0.95, 1.05)),
        "expression": rng.normal(size=100) * 1.5 / (1.0 + np.arange(100) / 4),
        "rotation": rotation,
        "rotation_matrix": rotation_matrices(rotation),
        "translation": rng.uniform(-0.01, 0.01, 3),
        "jaw": jaw,
        "neck": rng.uniform(-0.03, 0.03, 3),
        "eyes": np.tile(rng.uniform(-1, 1, 3) * np.array([0.1, 0.25, 0.0]), 2),
    }
    return {name: value.astype(np.float32) for name, value in params.items()}


def render_svfr_image(config: SyntheticConfig, participant: int, key: ImageKey) -> np.ndarray:
    """The synthetic ``rgb.png`` of one image key: (H, W, 3) uint8, the head over a grey backdrop."""
    if participant not in config.svfr_participants or key not in config.svfr_keys_of(participant):
        raise CatalogueError(f"Image {catalogue.svfr_folder(key)} of participant {participant} is not synthesised.")
    width, height = config.frame_size(catalogue.SVFR)
    cameras = camera_params(config, catalogue.SVFR, participant)
    params = svfr_flame_parameters(config, participant, key)
    appearance = Appearance.of(config.seed, catalogue.SVFR, participant)

    def colours(points: np.ndarray) -> np.ndarray:
        return albedo(points, appearance, params["expression"], params["jaw"], params["eyes"])

    noise = rng_for(config.seed, "svfr noise", participant, *key)
    rgb, alpha = render_frame(
        cameras["world_2_cam"][key.serial], cameras["intrinsics"][key.serial], width, height,
        params["rotation_matrix"].astype(np.float64), params["translation"].astype(np.float64),
        float(params["scale"]), colours, noise,
    )
    backdrop = np.linspace(*BACKDROP_RANGE, height)[:, None, None] * noise.uniform(0.8, 1.0, 3)
    behind = (1.0 - alpha[..., None] / 255.0) * backdrop * 255.0
    return np.clip(np.round(rgb + behind), 0, 255).astype(np.uint8)
