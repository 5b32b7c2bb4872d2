"""The Dataset skeleton of one sequence at a resolution level, and what a store already holds of it.

A level group mirrors its full-resolution sequence: the same ``serial`` and ``timestep`` coordinates, cameras
(intrinsics rescaled), split, FLAME tracking, and ``images``/``alpha`` with the same chunking and codec, plus
per-camera completion flags (``images_converted``, ``alpha_converted``) as the converter writes them.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from .. import schema
from ..frame_codecs import frame_codec
from ..convert.layout import converted_flag
from .resample import level_size, scale_intrinsics

LEVEL_ATTR = "level"
PIXEL_CENTRES = "integer coordinates (OpenCV): pixel (row i, column j) is centred at (u, v) = (j, i)"
RESAMPLING = (
    "area average of level-1 pixels (box of level x level), premultiplied RGB and alpha averaged alike, "
    "RGB black where alpha is 0; rows/columns that do not fill a box are cropped at the bottom/right"
)
INTRINSICS_RULE = "fx' = fx/s, fy' = fy/s, skew' = skew/s, cx' = (cx + 0.5)/s - 0.5, cy' = (cy + 0.5)/s - 0.5"
_COPIED_COORDS = (schema.SERIAL, schema.TIMESTEP, schema.SPLIT, schema.WORLD_2_CAM) + tuple(
    schema.FLAME_TIMESTEP_PARAMS
) + tuple(schema.FLAME_STATIC_PARAMS)


def level_skeleton(source: xr.Dataset, level: int) -> tuple[xr.Dataset, dict]:
    """The level-``level`` Dataset (frames as lazy zeros) of a full-resolution sequence, and its zarr encoding.

    ``source`` is the full-resolution sequence opened lazily from the store (its encoding gives the chunking).
    """
    full_height, full_width = source.attrs["height"], source.attrs["width"]
    height, width = level_size(full_height, full_width, level)
    coords = {name: _plain(source[name]) for name in _COPIED_COORDS if name in source.coords}
    coords[schema.INTRINSICS] = (
        source[schema.INTRINSICS].dims, scale_intrinsics(source[schema.INTRINSICS].values, level)
    )
    codec = frame_codec(source.attrs["frame_codec"])
    n_serials = source.sizes[schema.SERIAL]
    data_vars, encoding = {}, {}
    for name in (schema.IMAGES, schema.ALPHA):
        if name not in source:
            continue
        variable = source[name]
        shape = (n_serials, source.sizes[schema.TIMESTEP], height, width) + variable.shape[4:]
        chunks, shards = variable.encoding["chunks"], variable.encoding.get("shards") or variable.encoding["chunks"]
        data_vars[name] = xr.Variable(
            variable.dims, da.zeros(shape, dtype=np.uint8, chunks=(1, shards[1]) + shape[2:]),
            attrs={**variable.attrs, "resampling": RESAMPLING},
        )
        encoding[name] = {
            "chunks": (1, chunks[1]) + shape[2:], "shards": (1, shards[1]) + shape[2:], "fill_value": 0,
            **codec.zarr_encoding(),
        }
        coords[converted_flag(name)] = (schema.SERIAL, np.zeros(n_serials, dtype=bool))
        encoding[converted_flag(name)] = {"chunks": (1,)}
    attrs = {key: value for key, value in source.attrs.items() if key != "converted"}
    attrs.update({
        LEVEL_ATTR: int(level),
        "height": height,
        "width": width,
        "cropped_rows_bottom": int(full_height - height * level),
        "cropped_columns_right": int(full_width - width * level),
        "full_resolution_group": schema.sequence_group(attrs["benchmark"], attrs["participant"], attrs["sequence"]),
        "pixel_centres": PIXEL_CENTRES,
        "resampling": RESAMPLING,
        "intrinsics_rule": INTRINSICS_RULE,
    })
    return xr.Dataset(data_vars, coords=coords, attrs=attrs), encoding


def _plain(variable: xr.DataArray) -> tuple:
    """A coordinate as (dims, in-memory values), strings as Python objects (the converter's dtype)."""
    values = variable.values
    if values.dtype.kind in "OUT":
        values = np.array([str(value) for value in values.ravel()], dtype=object).reshape(values.shape)
    return variable.dims, values


def existing_levels(store: str, benchmark: str, participant: int, sequence: str) -> list[int]:
    """Levels (> 1) of a sequence that have a group in the store, ascending."""
    root = zarr.open_group(store, mode="r", use_consolidated=False)
    levels = []
    for name, _ in root.groups():
        if name.startswith(schema.LEVEL_PREFIX) and name[len(schema.LEVEL_PREFIX):].isdigit():
            level = int(name[len(schema.LEVEL_PREFIX):])
            if group_exists(store, schema.level_group(level, benchmark, participant, sequence)):
                levels.append(level)
    return sorted(levels)


def group_exists(store: str, path: str) -> bool:
    """True when ``path`` is a group of the store (read from the group's own metadata, not consolidated)."""
    try:
        zarr.open_group(store, path=path, mode="r", use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return False
    return True


def camera_flags(store: str, group: str, has_alpha: bool) -> np.ndarray:
    """Per-camera completion of a group's frames: images (and alpha, when the sequence has it) written."""
    done = zarr.open_array(store, path=f"{group}/{converted_flag(schema.IMAGES)}", mode="r")[:]
    if has_alpha:
        done &= zarr.open_array(store, path=f"{group}/{converted_flag(schema.ALPHA)}", mode="r")[:]
    return done
