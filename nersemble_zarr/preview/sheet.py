"""A contact sheet of every camera of one timestep: tiles in a grid, hold-out cameras framed, overlay dots."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr

from .. import schema, storage
from ..cameras import project_opencv
from ..errors import CatalogueError
from ..levels.resample import block_mean
from .overlay import Overlay
from .picture import DPI, Label

HOLD_OUT_COLOUR = (255, 0, 0)
TRAIN_LABEL_COLOUR = (235, 235, 235)
HOLD_OUT_LABEL_COLOUR = (255, 255, 255)  # on a strip of HOLD_OUT_COLOUR
NO_VIDEO_COLOUR = (150, 150, 150)
DOT_COLOUR = (0, 255, 0)
BACKGROUND = (40, 40, 40)
BORDER = 4         # pixels of the frame around each tile (red for hold-out cameras)
LABEL_HEIGHT = 16  # pixels of the caption strip above each tile
TITLE_HEIGHT = 22
GAP = 6
MAX_FONT_SIZE, MIN_FONT_SIZE, TITLE_FONT_SIZE = 8.0, 4.0, 10.0
CAPTION_FONT_SIZE = 6.5  # the smallest caption size kept readable: cells widen rather than shrink below it
MIN_TILE_WIDTH = 96      # frames narrower than this (tiny test data) are enlarged by a whole factor


@dataclass(frozen=True)
class Tile:
    """Where one camera's frame lies in the sheet: image area (inside the border) and its downscale factor."""

    serial: str
    split: str
    has_video: bool
    top: int
    left: int
    height: int
    width: int
    factor: int    # the frame was shrunk by this whole factor ...
    zoom: int = 1  # ... or enlarged by this one (pixel repetition), for frames narrower than MIN_TILE_WIDTH


@dataclass(frozen=True)
class ContactSheet:
    """The sheet's pixels (H, W, 3) uint8, its tiles, and the captions to draw on it."""

    pixels: np.ndarray
    tiles: list[Tile]
    labels: list[Label]


def contact_sheet(
    dataset: xr.Dataset, timestep: int, overlay: Overlay | None = None, *, tile_width: int = 275, dot_radius: int = 0
) -> ContactSheet:
    """Every camera of a sequence Dataset at ``timestep`` (an original frame index), in a grid.

    Frames are shrunk by a whole factor to at most ``tile_width`` pixels wide (frames narrower than
    ``MIN_TILE_WIDTH`` are enlarged by a whole factor instead). Cells and the sheet are widened so that every
    caption and the title stay readable. Cameras without video
    (hold-out cameras) are black tiles; hold-out cameras get a red border and a white caption on red. ``overlay`` points
    are projected into every camera and drawn as green dots of ``dot_radius``.
    """
    check_timestep(dataset, timestep)
    serials = [str(s) for s in dataset[schema.SERIAL].values]
    splits = camera_splits(dataset)
    height, width = int(dataset.attrs[schema.HEIGHT_ATTR]), int(dataset.attrs[schema.WIDTH_ATTR])
    factor = max(1, math.ceil(width / tile_width))
    zoom = math.ceil(MIN_TILE_WIDTH / width) if factor == 1 else 1
    tile_h, tile_w = height // factor * zoom, width // factor * zoom
    columns = math.ceil(math.sqrt(len(serials)))
    rows = math.ceil(len(serials) / columns)
    captions = [_caption(serial, split) for serial, split in zip(serials, splits)]
    widest_caption = max(_text_width(caption, CAPTION_FONT_SIZE) for caption in captions)
    group = schema.sequence_group_of(dataset.attrs)
    if dataset.attrs.get(schema.LEVEL_ATTR):
        group += f" (level {dataset.attrs[schema.LEVEL_ATTR]})"
    title = f"{group}  timestep {timestep}  dots: {overlay.description if overlay else 'none'}"
    # cells spread over the title's width, so no empty margin is left beside the grid
    cell_w = max(tile_w + 2 * BORDER + GAP, widest_caption + GAP,
                 math.ceil(_text_width(title, TITLE_FONT_SIZE) / columns))
    cell_h = LABEL_HEIGHT + tile_h + 2 * BORDER + GAP
    sheet_w = max(columns * cell_w + GAP, _text_width(title, TITLE_FONT_SIZE) + 2 * GAP)
    caption_size = min(_fitting_size(caption, cell_w - GAP) for caption in captions)  # one size for every caption
    pixels = np.empty((TITLE_HEIGHT + rows * cell_h + GAP, sheet_w, 3), dtype=np.uint8)
    pixels[:] = BACKGROUND
    dots = _projected(dataset, overlay)
    tiles, labels = [], []
    for index, (serial, split, caption) in enumerate(zip(serials, splits, captions)):
        row, column = divmod(index, columns)
        top = TITLE_HEIGHT + row * cell_h + LABEL_HEIGHT + BORDER
        left = GAP + column * cell_w + BORDER
        has_video = _has_video(dataset, index)
        tile = Tile(serial, split, has_video, top, left, tile_h, tile_w, factor, zoom)
        if split == "test":
            pixels[top - BORDER : top + tile_h + BORDER, left - BORDER : left + tile_w + BORDER] = HOLD_OUT_COLOUR
        view = pixels[top : top + tile_h, left : left + tile_w]
        view[:] = _resize(_frame(dataset, index, timestep), factor, zoom) if has_video else 0
        if dots is not None:
            _draw_dots(view, dots[index], zoom / factor, dot_radius)
        colour = TRAIN_LABEL_COLOUR
        if split == "test":  # white on red: as legible as the train captions, and seen at a glance
            strip_w = min(cell_w - GAP, max(tile_w + 2 * BORDER, _text_width(caption, caption_size)))
            strip = pixels[top - BORDER - LABEL_HEIGHT : top - BORDER, left - BORDER : left - BORDER + strip_w]
            strip[:] = HOLD_OUT_COLOUR
            colour = HOLD_OUT_LABEL_COLOUR
        labels.append(Label(left - BORDER, top - BORDER - LABEL_HEIGHT, caption, colour, caption_size))
        if not has_video:
            labels.append(Label(left + 3, top + 3, "no video", NO_VIDEO_COLOUR, _fitting_size("no video", tile_w - 6)))
        tiles.append(tile)
    title_size = _fitting_size(title, pixels.shape[1] - 2 * GAP, TITLE_FONT_SIZE)
    labels.append(Label(GAP, 3, title, TRAIN_LABEL_COLOUR, title_size))
    return ContactSheet(pixels, tiles, labels)


def check_timestep(dataset: xr.Dataset, timestep: int) -> None:
    """Raise a CatalogueError unless ``timestep`` is a value of the sequence's ``timestep`` coordinate."""
    values = dataset[schema.TIMESTEP].values
    if timestep not in values:
        raise CatalogueError(
            f"Timestep {timestep} is not in {schema.sequence_group_of(dataset.attrs)}; its timesteps are original "
            f"frame indices from {values.min()} to {values.max()} ({len(values)} frames)."
        )


def camera_splits(dataset) -> list[str]:
    """Each camera's split ("train", "test"), or "" for every camera of a source without hold-out (the dataset)."""
    if schema.SPLIT not in dataset.coords:
        return [""] * dataset.sizes[schema.SERIAL]
    return [str(s) for s in dataset[schema.SPLIT].values]


def _caption(serial: str, split: str) -> str:
    return f"{serial} {'hold-out' if split == 'test' else split}".rstrip()


def _text_width(text: str, size: float) -> int:
    """Pixels ``text`` takes at ``size`` points: monospace glyphs are 0.6 em wide, plus a margin for the
    renderer's hinting."""
    return math.ceil(0.66 * len(text) * DPI / 72 * size)


def _fitting_size(text: str, width: int, largest: float = MAX_FONT_SIZE) -> float:
    """A font size (points) at which ``text`` fits in ``width`` pixels."""
    return min(largest, max(MIN_FONT_SIZE, largest * width / _text_width(text, largest)))


def _has_video(dataset: xr.Dataset, index: int) -> bool:
    return bool(storage.written_cameras(dataset)[index])


def _frame(dataset: xr.Dataset, index: int, timestep: int) -> np.ndarray:
    return dataset[schema.IMAGES].isel({schema.SERIAL: index}).sel({schema.TIMESTEP: timestep}).values


def _resize(frame: np.ndarray, factor: int, zoom: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks (the frame cropped to a whole number of blocks), or repeat each
    pixel ``zoom`` x ``zoom`` times."""
    if factor > 1:
        return block_mean(frame[None], factor)[0]
    return frame if zoom == 1 else frame.repeat(zoom, axis=0).repeat(zoom, axis=1)


def _projected(dataset: xr.Dataset, overlay: Overlay | None) -> np.ndarray | None:
    """Pixel positions (serial, point, uv) of the overlay in every camera; NaN behind a camera."""
    if overlay is None:
        return None
    world_2_cam = np.asarray(dataset[schema.WORLD_2_CAM].values)[:, None]
    intrinsics = np.asarray(dataset[schema.INTRINSICS].values)[:, None]
    pixels, depth = project_opencv(overlay.points, world_2_cam, intrinsics)
    pixels[depth <= 0] = np.nan
    return pixels


def _draw_dots(view: np.ndarray, uv: np.ndarray, scale: float, radius: int) -> None:
    """Paint square dots at the full-resolution pixel positions ``uv`` (N, 2) (u right, v down, pixel centres
    at integers) on ``view``, a frame resized by ``scale``; dots outside the view are dropped."""
    height, width = view.shape[:2]
    uv = uv[np.isfinite(uv).all(axis=1)]
    columns, rows = (np.floor((uv[:, 0] + 0.5) * scale).astype(int), np.floor((uv[:, 1] + 0.5) * scale).astype(int))
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            r, c = rows + dy, columns + dx
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            view[r[inside], c[inside]] = DOT_COLOUR
