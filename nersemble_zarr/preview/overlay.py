"""World-space points to draw over a timestep's frames: the FLAME mesh, else the point cloud."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import xarray as xr

from .. import schema

MAX_POINTS = 1500  # more dots only hide the frame


@dataclass(frozen=True)
class Overlay:
    """Points (N, 3) in world coordinates and what they are, for the picture's title."""

    points: np.ndarray
    description: str


def overlay_points(
    dataset: xr.Dataset, timestep: int, flame_dir: str | os.PathLike | None = None, max_points: int = MAX_POINTS
) -> Overlay | None:
    """What to overlay at ``timestep`` (an original frame index) of a sequence Dataset, or None.

    In order: the FLAME vertices stored by ``nersemble-zarr meshes``; the FLAME mesh evaluated from the
    tracking with the model in ``flame_dir`` (only when given); the point cloud of that timestep.
    At most ``max_points`` evenly spaced points are kept.
    """
    one = dataset.sel({schema.TIMESTEP: [timestep]})
    overlay = _stored_vertices(one)
    if overlay is None and flame_dir is not None and "expression" in dataset.coords:
        overlay = _evaluated_vertices(one, flame_dir)
    if overlay is None:
        overlay = _pointcloud(dataset, timestep)
    if overlay is None or len(overlay.points) <= max_points:
        return overlay
    keep = np.linspace(0, len(overlay.points) - 1, max_points).round().astype(int)
    return Overlay(overlay.points[keep], f"{overlay.description}, {max_points} shown")


def _stored_vertices(one: xr.Dataset) -> Overlay | None:
    if schema.VERTICES not in one:
        return None
    vertices = np.asarray(one[schema.VERTICES].values[0], dtype=np.float64)
    if np.isnan(vertices).any():  # not written yet by an interrupted `meshes` run
        return None
    return Overlay(vertices, f"FLAME mesh ({len(vertices)} stored vertices)")


def _evaluated_vertices(one: xr.Dataset, flame_dir: str | os.PathLike) -> Overlay:
    from ..flame.lbs import FlameModel
    from ..flame.sequence import sequence_vertices

    model = FlameModel.load(flame_dir, device="cpu")
    vertices = np.asarray(sequence_vertices(one, model).values[0], dtype=np.float64)
    kind = "stand-in model, NOT FLAME" if model.assets.is_standin else "FLAME model"
    return Overlay(vertices, f"FLAME mesh ({len(vertices)} vertices evaluated with the {kind})")


def _pointcloud(dataset: xr.Dataset, timestep: int) -> Overlay | None:
    if schema.POINTS not in dataset or timestep not in dataset[schema.POINTCLOUD_TIMESTEP].values:
        return None
    cloud = dataset.sel({schema.POINTCLOUD_TIMESTEP: timestep})
    count = int(cloud[schema.POINT_COUNT].values)
    points = np.asarray(cloud[schema.POINTS].values[:count], dtype=np.float64)
    return Overlay(points, f"point cloud ({count} points)")
