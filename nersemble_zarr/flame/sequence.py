"""FLAME meshes of a sequence Dataset from the store, as xarray DataArrays (eager or lazy with dask).

A mono sequence Dataset carries the tracking as coordinates (names and dims in ``schema``):
per-timestep ``expression``, ``rotation``, ``translation``, ``jaw``, ``neck``, ``eyes`` along
``timestep``, and ``shape`` (shape_param) and 0-d ``scale``. Any slice of it (``isel``/``sel`` of
timesteps) gives the meshes of those timesteps. When the coordinates are dask arrays (opened with
``chunks=``), the result is lazy and evaluates one timestep chunk per dask task.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from .. import schema
from ..errors import FlameError
from .lbs import FlameModel
from .params import TIMESTEP_WIDTHS, FlameParameters

Output = Literal["vertices", "landmarks"]


def flame_parameters(ds: xr.Dataset) -> FlameParameters:
    """The FLAME parameters of a sequence Dataset as numpy arrays (dask coordinates are computed)."""
    _check_flame_coords(ds)
    timestep_values = {name: np.asarray(ds[name].values) for name in TIMESTEP_WIDTHS}
    return FlameParameters(
        shape=np.asarray(ds["shape"].values), scale=float(ds["scale"].values), source=_describe(ds),
        **timestep_values,
    )


def sequence_vertices(ds: xr.Dataset, model: FlameModel, *, batch_size: int | None = None) -> xr.DataArray:
    """World-space vertices (timestep, vertex, xyz) float32 of every timestep of ``ds``."""
    return _sequence_output(ds, model, "vertices", batch_size)


def sequence_landmarks(ds: xr.Dataset, model: FlameModel, *, batch_size: int | None = None) -> xr.DataArray:
    """World-space landmarks (timestep, landmark, xyz) float32; needs the landmark embeddings."""
    model.require_landmarks()
    return _sequence_output(ds, model, "landmarks", batch_size)


def faces_dataarray(model: FlameModel) -> xr.DataArray:
    """The mesh triangles (face, corner) int32, indices into the vertex dimension."""
    return xr.DataArray(model.faces, dims=(schema.FACE, schema.CORNER), name=schema.FACES)


def _sequence_output(ds: xr.Dataset, model: FlameModel, output: Output, batch_size: int | None) -> xr.DataArray:
    _check_flame_coords(ds)
    point_dim = schema.VERTEX if output == "vertices" else schema.LANDMARK
    n_points = model.assets.v_template.shape[0] if output == "vertices" else model.n_landmarks
    lazy = any(ds[name].chunks is not None for name in TIMESTEP_WIDTHS)
    if lazy:
        data = _lazy_output(ds, model, output, n_points, batch_size)
    else:
        meshes = model.evaluate(flame_parameters(ds), batch_size=batch_size, landmarks=output == "landmarks")
        data = meshes.vertices if output == "vertices" else meshes.landmarks
    name = schema.VERTICES if output == "vertices" else schema.LANDMARKS
    coords = {schema.TIMESTEP: ds[schema.TIMESTEP]} if schema.TIMESTEP in ds.coords else {}
    return xr.DataArray(data, dims=(schema.TIMESTEP, point_dim, schema.XYZ), coords=coords, name=name)


def _lazy_output(ds: xr.Dataset, model: FlameModel, output: Output, n_points: int, batch_size: int | None):
    """A dask array evaluating each timestep chunk of the tracking coordinates in its own task."""
    import dask.array as da
    from dask.base import tokenize

    first = ds[next(name for name in TIMESTEP_WIDTHS if ds[name].chunks is not None)]
    timestep_chunks = first.chunks[0]
    inputs = [
        da.asarray(ds[name].data).rechunk((timestep_chunks, -1)) for name in TIMESTEP_WIDTHS
    ]
    shape, scale = np.asarray(ds["shape"].values), float(ds["scale"].values)
    identity = model.identity(shape, scale)
    source = _describe(ds)

    def evaluate_block(*blocks: np.ndarray) -> np.ndarray:
        params = FlameParameters(shape=shape, scale=scale, source=source, **dict(zip(TIMESTEP_WIDTHS, blocks)))
        meshes = model.evaluate(params, identity=identity, batch_size=batch_size, landmarks=output == "landmarks")
        return meshes.vertices if output == "vertices" else meshes.landmarks

    # Index "t" is shared (timestep chunks); each parameter axis gets its own letter and is one chunk.
    arguments = [item for array, letter in zip(inputs, "abcdef") for item in (array, "t" + letter)]
    return da.blockwise(
        evaluate_block, "tvx", *arguments,
        new_axes={"v": n_points, "x": 3}, concatenate=True, dtype=np.float32,
        name=f"flame-{output}-" + tokenize(model, shape, scale, batch_size, *inputs),
    )


def _check_flame_coords(ds: xr.Dataset) -> None:
    """Raise a FlameError naming the first missing or misshapen FLAME coordinate of ``ds``."""
    expected = {**schema.FLAME_STATIC_PARAMS, **{name: schema.FLAME_TIMESTEP_PARAMS[name] for name in TIMESTEP_WIDTHS}}
    for name, dims in expected.items():
        if name not in ds.variables:
            raise FlameError(
                f"{_describe(ds)} has no FLAME parameter {name!r}; expected a mono_flame_avatar sequence with "
                f"tracking coordinates {', '.join(expected)}."
            )
        if ds[name].dims != dims:
            raise FlameError(f"{_describe(ds)}: FLAME parameter {name!r} has dims {ds[name].dims}, expected {dims}.")


def _describe(ds: xr.Dataset) -> str:
    """A name for ``ds`` in error messages: its store group when known."""
    source = ds.encoding.get("source") or ds.attrs.get("group")
    return f"sequence {source}" if source else "the sequence Dataset"
