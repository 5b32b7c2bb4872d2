"""Synthetic NVS point clouds: coloured, oriented points on the visible part of the head, written as the
binary PCD files open3d writes (fields x y z normal_x normal_y normal_z rgb)."""

from __future__ import annotations

import os

import numpy as np

from .appearance import Appearance, albedo
from .head import ellipsoid_normals, ellipsoid_points
from .scene import model_to_world, rng_for

PCD_HEADER = (
    "# .PCD v0.7 - Point Cloud Data file format\n"
    "VERSION 0.7\n"
    "FIELDS x y z normal_x normal_y normal_z rgb\n"
    "SIZE 4 4 4 4 4 4 4\n"
    "TYPE F F F F F F U\n"
    "COUNT 1 1 1 1 1 1 1\n"
    "WIDTH {n}\n"
    "HEIGHT 1\n"
    "VIEWPOINT 0 0 0 1 0 0 0\n"
    "POINTS {n}\n"
    "DATA binary\n"
)
SURFACE_NOISE = 0.0005  # metres, along the normal, like a multi-view reconstruction


def head_pointcloud(
    seed: int,
    keys: tuple,
    n_points: int,
    params: dict[str, np.ndarray],
    index: int,
    appearance: Appearance,
    camera_centres: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points, colours in [0, 1] and unit normals (each (N, 3) float32, world space) of the head at frame
    ``index`` of ``params`` (tracking); of ``n_points`` samples only those facing some camera are kept."""
    rng = rng_for(seed, "pointcloud", *keys, index)
    model = ellipsoid_points(n_points, rng)
    normals_model = ellipsoid_normals(model)
    model = model + normals_model * rng.normal(scale=SURFACE_NOISE, size=(n_points, 1))
    rotation = params["rotation_matrices"][index].astype(np.float64)
    points = model_to_world(model, rotation, params["translation"][index].astype(np.float64), params["scale"])
    normals = normals_model @ rotation.T
    facing = np.einsum("nci,ni->nc", camera_centres[None, :, :] - points[:, None, :], normals) > 0
    visible = facing.any(axis=1)
    colours = albedo(
        model[visible], appearance, params["expression"][index], params["jaw"][index], params["eyes"][index]
    )
    return points[visible].astype(np.float32), colours.astype(np.float32), normals[visible].astype(np.float32)


def write_pcd(path: str | os.PathLike, points: np.ndarray, colours: np.ndarray, normals: np.ndarray) -> None:
    """Write a binary PCD (float32 xyz and normals, packed uint32 rgb) that open3d reads with colours and normals."""
    n = len(points)
    rgb = np.round(np.clip(colours, 0, 1) * 255).astype(np.uint32)
    packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    record = np.dtype([("xyz", "<f4", 3), ("normal", "<f4", 3), ("rgb", "<u4")])
    body = np.empty(n, dtype=record)
    body["xyz"], body["normal"], body["rgb"] = points, normals, packed
    with open(path, "wb") as file:
        file.write(PCD_HEADER.format(n=n).encode("ascii"))
        file.write(body.tobytes())
