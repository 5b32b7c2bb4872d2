"""Check that every chunk the store's flags say was written is on disk, so no reader returns fill values for it.

zarr reads a chunk whose file is absent as its fill value: a deleted shard of a converted camera would read as
black frames. The flags say what was written: a camera's ``images_converted``/``alpha_converted`` (its frame
shards), a group's skeleton marker or ``converted`` (its coordinates and point clouds) and ``vertices_complete``
(the meshes). :func:`lost_chunk` finds, with one ``stat`` per shard file, the first flagged chunk whose file is
missing; :func:`check_group` raises :class:`MissingChunk` for it. Stores on object storage are not checked (a
listing there costs far more than a stat).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator

import numpy as np
import zarr

from . import schema
from .errors import MissingChunk

FRAME_VARIABLES = (schema.IMAGES, schema.ALPHA, schema.BACKGROUND)  # flagged per camera (``*_converted``)
MESH_VARIABLES = (schema.VERTICES, schema.LANDMARKS, schema.FACES)


def missing_chunk(store: str, group: zarr.Group, variable: str, index: tuple[int, ...], file: str) -> MissingChunk:
    """The error for the chunk of ``group/variable`` at leading ``index`` that is not in the file ``file``:
    lost when the flags say it was written, else never written."""
    where = f"{group.path}/{variable} {_where(group, variable, index)}"
    if is_flagged(group, variable, index):
        return MissingChunk(
            f"The store {store} has lost a chunk it says was written: {where} (it is not in the file {file}); "
            "restore that file, or convert the sequence into a new store."
        )
    return MissingChunk(
        f"The store {store} holds no data for {where}: it was never written (a camera without video, or one "
        "not converted yet; `nersemble-zarr info` lists them)."
    )


def is_flagged(group: zarr.Group, variable: str, index: tuple[int, ...]) -> bool:
    """True when the group's flags say the chunk of ``variable`` at ``index`` was written."""
    flag = schema.converted_flag(variable)
    if variable in FRAME_VARIABLES:
        return flag in group and bool(group[flag][index[0]])
    if variable in MESH_VARIABLES:
        return bool(group.attrs.get(schema.VERTICES_COMPLETE_ATTR))
    return bool(group.attrs.get(schema.SKELETON_ATTR) or group.attrs.get(schema.CONVERTED_ATTR))


def _where(group: zarr.Group, variable: str, index: tuple[int, ...]) -> str:
    """The camera and timestep (or SVFR image, or timestep) that a leading index of ``variable`` names."""
    dims = tuple(group[variable].metadata.dimension_names or ()) if variable in group else ()
    try:
        if dims[:1] == (schema.IMAGE,):
            image = index[0]
            return (f"for the image {group[schema.SVFR_SEQUENCE][image]}_{int(group[schema.TIMESTEP][image])}_"
                    f"{group[schema.SERIAL][image]}")
        if dims[:2] == (schema.SERIAL, schema.TIMESTEP):
            return f"for camera {group[schema.SERIAL][index[0]]} at timestep {int(group[schema.TIMESTEP][index[1]])}"
        if dims[:1] == (schema.TIMESTEP,):
            return f"at timestep {int(group[schema.TIMESTEP][index[0]])}"
    except (KeyError, IndexError, ValueError, TypeError):  # a damaged coordinate: fall back to the index
        pass
    return f"at index {tuple(int(i) for i in index)}"


def lost_chunk(store: str, group: zarr.Group) -> MissingChunk | None:
    """The error for the first chunk of ``group`` (opened from ``store``) that its flags say was written and whose
    file is absent (``None`` when there is none, or the store is not local)."""
    if "://" in store:
        return None
    for name, array in sorted(group.arrays()):
        for index, file in _expected_files(group, name, array):
            if not os.path.exists(os.path.join(store, array.path, file)):
                return missing_chunk(store, group, name, index, f"{array.path}/{file}")
    return None


def check_group(store: str, group: zarr.Group) -> None:
    """Raise MissingChunk when a flagged chunk of ``group`` (opened from ``store``) is missing."""
    error = lost_chunk(store, group)
    if error is not None:
        raise error


def _expected_files(group: zarr.Group, name: str, array: zarr.Array) -> Iterator[tuple[tuple[int, ...], str]]:
    """(leading index, chunk key) of every file of ``array`` that the group's flags say was written."""
    if name.endswith(schema.CONVERTED_SUFFIX):
        return  # completion flags: False is their fill value, so a False camera's chunk is rightly absent
    per_file = array.shards or array.chunks
    grid = [range(math.ceil(n / c)) for n, c in zip(array.shape, per_file)]
    if name in FRAME_VARIABLES:
        flag = schema.converted_flag(name)
        if flag not in group:
            return
        rows = np.flatnonzero(group[flag][...]) // per_file[0]
        grid[0] = sorted(set(int(row) for row in rows))
    elif name in MESH_VARIABLES:
        if not group.attrs.get(schema.VERTICES_COMPLETE_ATTR):
            return
    elif not (group.attrs.get(schema.SKELETON_ATTR) or group.attrs.get(schema.CONVERTED_ATTR)):
        return
    for coords in itertools.product(*grid):
        index = tuple(c * n for c, n in zip(coords, per_file))
        yield index, array.metadata.encode_chunk_key(coords)
