"""The Dataset skeleton of one sequence at a resolution level.

A level group mirrors its full-resolution sequence: the same ``serial`` and ``timestep`` coordinates, cameras
(intrinsics rescaled), split, FLAME tracking, a dataset sequence's colour matrices and calibration texts, and
``images``/``alpha``/``background`` with the same chunking and codec, plus per-camera completion flags
(``images_converted``, ``alpha_converted``, ``background_converted``) as the converter writes them.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from .. import schema
from ..frame_codecs import frame_codec
from .resample import level_size, scale_intrinsics

PIXEL_CENTRES = "integer coordinates (OpenCV): pixel (row i, column j) is centred at (u, v) = (j, i)"
RESAMPLING = (
    "area average of level-1 pixels (box of level x level), premultiplied RGB and alpha averaged alike, "
    "RGB black where alpha is 0; rows/columns that do not fill a box are cropped at the bottom/right"
)
PLAIN_RESAMPLING = (
    "area average of level-1 pixels (box of level x level, rounded half up), every level computed from level 1; "
    "rows/columns that do not fill a box are cropped at the bottom/right"
)
FULL_RESOLUTION_GROUP_ATTR = "full_resolution_group"  # attribute of a level group downsample wrote: its source group
INTRINSICS_RULE = "fx' = fx/s, fy' = fy/s, skew' = skew/s, cx' = (cx + 0.5)/s - 0.5, cy' = (cy + 0.5)/s - 0.5"
_COPIED_COORDS = (schema.SERIAL, schema.TIMESTEP, schema.SPLIT, schema.WORLD_2_CAM, schema.COLOUR_CORRECTION) + tuple(
    schema.FLAME_TIMESTEP_PARAMS
) + tuple(schema.FLAME_STATIC_PARAMS)
FRAME_VARIABLES = (schema.IMAGES, schema.ALPHA, schema.BACKGROUND)  # the pixel variables a level averages


def level_skeleton(source: xr.Dataset, level: int) -> tuple[xr.Dataset, dict]:
    """The level-``level`` Dataset (frames as lazy zeros) of a full-resolution sequence, and its zarr encoding.

    ``source`` is the full-resolution sequence opened lazily from the store (its encoding gives the chunking).
    """
    full_height, full_width = source.attrs[schema.HEIGHT_ATTR], source.attrs[schema.WIDTH_ATTR]
    height, width = level_size(full_height, full_width, level)
    coords = {name: _plain(source[name]) for name in _COPIED_COORDS if name in source.coords}
    coords[schema.INTRINSICS] = (
        source[schema.INTRINSICS].dims, scale_intrinsics(source[schema.INTRINSICS].values, level)
    )
    resampling = RESAMPLING if schema.ALPHA in source else PLAIN_RESAMPLING
    data_vars, encoding = frame_variables(source, level, resampling)
    for name in data_vars:
        coords[schema.converted_flag(name)] = (schema.SERIAL, np.zeros(source.sizes[schema.SERIAL], dtype=bool))
        encoding[schema.converted_flag(name)] = {"chunks": (1,)}
    attrs = {key: value for key, value in source.attrs.items() if key != schema.CONVERTED_ATTR}
    attrs.update({
        schema.LEVEL_ATTR: int(level),
        schema.HEIGHT_ATTR: height,
        schema.WIDTH_ATTR: width,
        "cropped_rows_bottom": int(full_height - height * level),
        "cropped_columns_right": int(full_width - width * level),
        FULL_RESOLUTION_GROUP_ATTR: schema.sequence_group_of(attrs),
        "pixel_centres": PIXEL_CENTRES,
        "resampling": resampling,
        "intrinsics_rule": INTRINSICS_RULE,
    })
    if attrs.get(schema.COLOUR_CORRECTED_ATTR):  # a corrected dataset sequence: here the order is the other one
        attrs["colour_correction_order"] = ("colour-corrected at full resolution, then area-averaged by downsample "
                                            "(`convert -b dataset --level N --colour-correct` averages first)")
    return xr.Dataset(data_vars, coords=coords, attrs=attrs), encoding


def frame_variables(source: xr.Dataset, level: int, resampling: str) -> tuple[dict, dict]:
    """The level's pixel variables (``FRAME_VARIABLES`` the source has) as lazy zeros, and their encoding: the
    source's dims, chunking (a chunk and a shard hold as many frames as the source's) and codec, y and x divided."""
    height, width = level_size(source.attrs[schema.HEIGHT_ATTR], source.attrs[schema.WIDTH_ATTR], level)
    codec = frame_codec(source.attrs[schema.FRAME_CODEC_ATTR])
    data_vars, encoding = {}, {}
    for name in FRAME_VARIABLES:
        if name not in source:
            continue
        variable = source[name]

        def at_level(sizes) -> tuple[int, ...]:
            return tuple(height if dim == schema.Y else width if dim == schema.X else int(size)
                         for dim, size in zip(variable.dims, sizes))

        shape, chunks = at_level(variable.shape), at_level(variable.encoding["chunks"])
        shards = variable.encoding.get("shards")
        data_vars[name] = xr.Variable(
            variable.dims, da.zeros(shape, dtype=np.uint8, chunks=at_level(shards or chunks)),
            attrs={**variable.attrs, "resampling": resampling},
        )
        encoding[name] = {"chunks": chunks, "fill_value": 0, **codec.zarr_encoding()}
        if shards:
            encoding[name]["shards"] = at_level(shards)
    return data_vars, encoding


def _plain(variable: xr.DataArray) -> tuple:
    """A coordinate as (dims, in-memory values), strings as Python objects (the converter's dtype)."""
    values = variable.values
    if values.dtype.kind in "OUT":
        values = np.array([str(value) for value in values.ravel()], dtype=object).reshape(values.shape)
    return variable.dims, values
