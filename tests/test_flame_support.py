"""Helpers shared by the FLAME tests (random parameters, sequence Datasets, reference path); the stand-in
model fixtures are in conftest.py.

The reference path is the official one: the ``flame_model`` package's FLAME forward for one timestep
(global rotation 0, no translation), then v_world = scale * R @ v + translation with R from scipy.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.spatial.transform import Rotation

from nersemble_zarr import schema
from nersemble_zarr.flame.params import FlameParameters

SERIALS = ("222200037", "222200046")


def random_parameters(n_timesteps: int, seed: int = 0) -> FlameParameters:
    """Random tracking-like parameters, with neck, jaw and eye poses of realistic size."""
    rng = np.random.default_rng(seed)
    return FlameParameters(
        shape=rng.normal(size=300),
        scale=float(rng.uniform(0.8, 1.3)),
        expression=rng.normal(size=(n_timesteps, 100)),
        rotation=rng.normal(size=(n_timesteps, 3)) * 0.4,
        translation=rng.normal(size=(n_timesteps, 3)) * 0.1,
        jaw=rng.normal(size=(n_timesteps, 3)) * 0.2,
        neck=rng.normal(size=(n_timesteps, 3)) * 0.3,
        eyes=rng.normal(size=(n_timesteps, 6)) * 0.2,
    )


def cameras(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two OpenCV cameras about a metre in front of the origin looking at it: world_2_cam, intrinsics."""
    world_2_cam = np.zeros((len(SERIALS), 4, 4))
    intrinsics = np.zeros((len(SERIALS), 3, 3))
    for index in range(len(SERIALS)):
        rotation = Rotation.from_euler("xyz", rng.normal(size=3) * 0.1).as_matrix()
        world_2_cam[index, :3, :3] = rotation
        world_2_cam[index, :3, 3] = [rng.normal() * 0.05, rng.normal() * 0.05, 1.0]
        world_2_cam[index, 3, 3] = 1.0
        intrinsics[index] = [[600.0 + index, 0.0, 256.0], [0.0, 610.0, 250.0], [0.0, 0.0, 1.0]]
    return world_2_cam, intrinsics


def sequence_dataset(n_timesteps: int, seed: int = 0, first_frame: int = 3) -> xr.Dataset:
    """A mono sequence Dataset with exactly the store's names: tracking and cameras as coordinates.

    Shapes follow the real tracking npz: shape (1, 300) -> (300,), scale (1, 1) -> scalar, frames -> timestep.
    """
    params = random_parameters(n_timesteps, seed)
    rng = np.random.default_rng(seed + 100)
    world_2_cam, intrinsics = cameras(rng)
    coords = {
        schema.TIMESTEP: first_frame + 2 * np.arange(n_timesteps),
        "shape": (schema.FLAME_STATIC_PARAMS["shape"], params.shape),
        "scale": (schema.FLAME_STATIC_PARAMS["scale"], params.scale),
        "rotation_matrices": (
            schema.FLAME_TIMESTEP_PARAMS["rotation_matrices"], Rotation.from_euler("XYZ", params.rotation).as_matrix()),
        schema.SERIAL: list(SERIALS),
        schema.WORLD_2_CAM: ((schema.SERIAL, schema.MAT4_ROW, schema.MAT4_COL), world_2_cam),
        schema.INTRINSICS: ((schema.SERIAL, schema.MAT3_ROW, schema.MAT3_COL), intrinsics),
    }
    for name in ("expression", "rotation", "translation", "jaw", "neck", "eyes"):
        coords[name] = (schema.FLAME_TIMESTEP_PARAMS[name], getattr(params, name))
    return xr.Dataset(coords=coords)


def reference_meshes(flame, params: FlameParameters) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and landmarks per timestep the official way: flame_model forward one t at a time + transform."""
    import torch

    def row(array) -> torch.Tensor:
        return torch.tensor(np.asarray(array)[None], dtype=torch.float32)

    vertices, landmarks = [], []
    for t in range(params.n_timesteps):
        with torch.no_grad():
            v, lmk = flame.forward(
                shape_params=row(params.shape), expression_params=row(params.expression[t]),
                pose_params=torch.cat([torch.zeros(1, 3), row(params.jaw[t])], dim=1),
                neck_pose=row(params.neck[t]), eye_pose=row(params.eyes[t]))
        rotation = Rotation.from_euler("XYZ", params.rotation[t]).as_matrix()
        for points, out in ((v, vertices), (lmk, landmarks)):
            out.append(params.scale * points[0].numpy().astype(np.float64) @ rotation.T + params.translation[t])
    return np.stack(vertices), np.stack(landmarks)


def reference_flame(folder):
    """The flame_model package's FLAME (batch size 1, all 300 shape and 100 expression parameters)."""
    from flame_model import FLAME, FlameConfig

    return FLAME(FlameConfig(flame_folder=str(folder), shape_params=300, expression_params=100, batch_size=1))
