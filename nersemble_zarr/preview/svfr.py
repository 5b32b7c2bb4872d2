"""A contact sheet of one participant's SVFR images, each with its predicted mesh drawn beside it when given.

SVFR images come without cameras, so a mesh is drawn from the front (FLAME's +z towards the viewer, y up),
orthographically and fitted to the tile: its triangles filled far to near, shaded by their normals.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .. import catalogue, schema
from ..catalogue import ImageKey
from ..errors import SubmissionError
from ..levels.resample import block_mean
from .picture import Label
from .sheet import BACKGROUND, GAP, LABEL_HEIGHT, TITLE_FONT_SIZE, TITLE_HEIGHT, TRAIN_LABEL_COLOUR, _fitting_size

Meshes = dict[ImageKey, tuple[np.ndarray, np.ndarray]]
LIGHT = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
MESH_BACKGROUND = (20, 20, 20)
MISSING_COLOUR = (150, 150, 150)


def load_meshes(source: Any, participant: int, task: str = "posed") -> Meshes:
    """A participant's meshes of one task from a submission zip, a predictions folder or a mapping
    (the forms ``export_svfr_submission`` takes); keys without a mesh are left out."""
    from ..submission.svfr_predictions import collect_svfr_predictions

    catalogue.check_svfr_task(task)
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        return _zip_meshes(Path(source), participant, task)
    sources = collect_svfr_predictions(source, tasks=(task,), partial=True)
    return {s.key: (m.vertices, m.faces) for s in sources if s.participant == participant for m in [s.load()]}


def _zip_meshes(path: Path, participant: int, task: str) -> Meshes:
    """The meshes of a submission zip, each entry read size-capped (never extracted)."""
    from ..submission.meshfile import MeshFileError, read_ply
    from ..submission.svfr_predictions import MAX_MESH_FILE_BYTES
    from ..submission.zipsafety import copy_entry, open_zip, size_problem, unsafe_entry

    meshes: Meshes = {}
    with open_zip(path) as archive:
        names = {info.filename: info for info in archive.infolist() if unsafe_entry(info) is None}
        for key in catalogue.svfr_image_keys()[participant]:
            info = names.get(catalogue.svfr_mesh_entry(participant, key, task))
            if info is None:
                continue
            buffer = io.BytesIO()
            problem = size_problem(info, MAX_MESH_FILE_BYTES) or copy_entry(archive, info, buffer, MAX_MESH_FILE_BYTES)
            if problem is not None:
                raise SubmissionError(problem)
            try:
                meshes[key] = read_ply(buffer.getvalue())
            except MeshFileError as error:
                raise SubmissionError(f"{info.filename} in {path} is not a readable PLY mesh: {error}.") from error
    return meshes


def draw_mesh(vertices: np.ndarray, faces: np.ndarray, height: int, width: int) -> np.ndarray:
    """The mesh seen from the front, fitted into an (height, width, 3) uint8 picture: its triangles filled far
    to near (painter's order), each shaded by its normal."""
    picture = np.empty((height, width, 3), dtype=np.uint8)
    picture[:] = MESH_BACKGROUND
    vertices, faces = np.asarray(vertices, dtype=np.float64), np.asarray(faces)
    if not len(vertices) or not len(faces) or not np.isfinite(vertices).all():
        return picture
    low, high = vertices[:, :2].min(axis=0), vertices[:, :2].max(axis=0)
    scale = 0.9 * min(width, height) / max(float((high - low).max()), 1e-12)
    centre = (low + high) / 2
    points = np.stack([width / 2 + (vertices[:, 0] - centre[0]) * scale,
                       height / 2 - (vertices[:, 1] - centre[1]) * scale], axis=1)
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    colours = ((0.25 + 0.75 * np.abs(normals @ LIGHT))[:, None] * np.array([225, 215, 200])).astype(np.uint8)
    for index in np.argsort(corners[:, :, 2].mean(axis=1)):  # far first
        _fill(picture, points[faces[index]], colours[index])
    return picture


def _fill(picture: np.ndarray, triangle: np.ndarray, colour: np.ndarray) -> None:
    """Paint the pixels whose centres lie in a 2D triangle (3, 2) (x right, y down), edges included."""
    x0, y0 = np.maximum(np.floor(triangle.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(triangle.max(axis=0)).astype(int) + 1, (picture.shape[1], picture.shape[0]))
    if x1 <= x0 or y1 <= y0:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
    (ax, ay), (bx, by), (cx, cy) = triangle
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    if abs(area) < 1e-12:
        picture[int(min(max(ay, 0), picture.shape[0] - 1)), int(min(max(ax, 0), picture.shape[1] - 1))] = colour
        return
    w0 = ((bx - xs) * (cy - ys) - (by - ys) * (cx - xs)) / area
    w1 = ((cx - xs) * (ay - ys) - (cy - ys) * (ax - xs)) / area
    inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (1 - w0 - w1 >= -1e-9)
    picture[y0:y1, x0:x1][inside] = colour


def svfr_sheet(dataset: xr.Dataset, meshes: Meshes | None = None, *, tile_width: int = 160) -> tuple[np.ndarray, list]:
    """Every image of a participant's SVFR Dataset in a grid, captioned with its key, and its mesh beside it
    when ``meshes`` is given; returns (pixels (H, W, 3) uint8, labels)."""
    keys = [ImageKey(str(s), int(t), str(c)) for s, t, c in zip(
        dataset[schema.SVFR_SEQUENCE].values, dataset[schema.TIMESTEP].values, dataset[schema.SERIAL].values)]
    height, width = int(dataset.attrs[schema.HEIGHT_ATTR]), int(dataset.attrs[schema.WIDTH_ATTR])
    factor = max(1, math.ceil(width / tile_width))
    tile_h, tile_w = height // factor, width // factor
    panels = 2 if meshes is not None else 1
    columns = math.ceil(math.sqrt(len(keys) / panels))
    rows = math.ceil(len(keys) / columns)
    cell_w, cell_h = panels * tile_w + GAP, LABEL_HEIGHT + tile_h + GAP
    pixels = np.empty((TITLE_HEIGHT + rows * cell_h + GAP, columns * cell_w + GAP, 3), dtype=np.uint8)
    pixels[:] = BACKGROUND
    labels = []
    for index, key in enumerate(keys):
        row, column = divmod(index, columns)
        top, left = TITLE_HEIGHT + row * cell_h + LABEL_HEIGHT, GAP + column * cell_w
        image = dataset[schema.IMAGES][index].values[..., :3]
        pixels[top: top + tile_h, left: left + tile_w] = image if factor == 1 else block_mean(image[None], factor)[0]
        caption = catalogue.svfr_folder(key)
        labels.append(Label(left, top - LABEL_HEIGHT, caption, TRAIN_LABEL_COLOUR, _fitting_size(caption, panels * tile_w)))
        if meshes is not None:
            view = pixels[top: top + tile_h, left + tile_w: left + 2 * tile_w]
            if key in meshes:
                view[:] = draw_mesh(*meshes[key], tile_h, tile_w)
            else:
                view[:] = MESH_BACKGROUND
                labels.append(Label(left + tile_w + 3, top + 3, "no mesh", MISSING_COLOUR,
                                    _fitting_size("no mesh", tile_w - 6)))
    found = "" if meshes is None else f"  meshes: {sum(k in meshes for k in keys)} of {len(keys)}"
    title = f"{schema.svfr_group(dataset.attrs[schema.PARTICIPANT_ATTR])}  {len(keys)} images{found}"
    labels.append(Label(GAP, 3, title, TRAIN_LABEL_COLOUR, _fitting_size(title, pixels.shape[1] - 2 * GAP, TITLE_FONT_SIZE)))
    return pixels, labels
