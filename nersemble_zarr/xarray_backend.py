"""The xarray backend ``engine="nersemble"``: the store as ``engine="zarr"`` opens it, with frame arrays read
straight from their shards.

    tree = xr.open_datatree("nersemble.zarr", engine="nersemble", chunks={})
    frame = tree["nvs/388/GLASSES"].images.sel(serial="222200042", timestep=0).values

Registered under xarray's ``xarray.backends`` entry point (pyproject.toml), so ``engine="nersemble"`` works
without importing this package. Every variable, coordinate, attribute and encoding is what the zarr backend
gives; a frame array (``chunk_reader``'s fast path: a local uint8 array whose chunks each hold one frame,
zstd or Blosc) becomes a lazily indexed :class:`FrameBackendArray` whose ``__getitem__`` reads the frames it
needs whole with ``chunk_reader.FrameReader`` (one ``pread`` and one decompression into the array each).
Anything else (object storage, JPEG XL, other arrays) is read by zarr, as with ``engine="zarr"``. With
``chunks={}`` the dask chunks are the stored chunks: one frame each.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np
from xarray import DataTree
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.backends.common import _normalize_path, datatree_from_dict_with_io_cleanup
from xarray.backends.store import StoreBackendEntrypoint
from xarray.backends.zarr import ZarrBackendEntrypoint, ZarrStore
from xarray.core import indexing
from xarray.core.treenode import NodePath
from xarray.core.utils import close_on_error
from xarray.core.variable import Variable

from .chunk_reader import FrameReader


class FrameBackendArray(BackendArray):
    """A frame array read whole frame by whole frame through a :class:`FrameReader`, with outer indexing:
    integers, slices or integer arrays along the leading axes pick frames, the trailing ones cut each frame."""

    __slots__ = ("_reader", "_lead", "dtype", "shape")

    def __init__(self, reader: FrameReader) -> None:
        self._reader = reader
        self._lead = reader.lead
        self.shape = reader.shape
        self.dtype = np.dtype(np.uint8)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._read)

    def _read(self, key: tuple) -> np.ndarray:
        """``array.oindex[key]`` for a key of integers, slices and 1-D integer arrays, one per axis."""
        self._reader.read_all_indices()  # the array's first read reads every shard index at once
        lead, trail = key[: self._lead], key[self._lead:]
        picks = [np.arange(n)[k] for k, n in zip(lead, self.shape)]
        shape = tuple(np.shape(p) for p in picks)
        frames = [_outer(self._reader.read(index), trail)
                  for index in itertools.product(*(np.ravel(p) for p in picks))]
        if len(frames) == 1:  # one frame: no copy
            return frames[0].reshape(tuple(itertools.chain(*shape)) + frames[0].shape)
        out = np.stack(frames) if frames else np.empty((0,) + self._trailing_shape(trail), np.uint8)
        return out.reshape(tuple(itertools.chain(*shape)) + out.shape[1:])

    def _trailing_shape(self, trail: tuple) -> tuple[int, ...]:
        return _outer(np.empty(self.shape[self._lead:], dtype=bool), trail).shape


def _outer(frame: np.ndarray, key: tuple) -> np.ndarray:
    """``frame`` cut by an outer key (integers, slices, 1-D integer arrays; a view when it holds no array)."""
    if all(isinstance(k, (slice, int, np.integer)) for k in key):
        return frame[key]
    axis = 0
    for k in key:
        if isinstance(k, slice):
            frame = frame[(slice(None),) * axis + (k,)]
        else:
            frame = np.take(frame, k, axis=axis)
        axis += 0 if isinstance(k, (int, np.integer)) else 1
    return frame


class _FrameStore(ZarrStore):
    """xarray's zarr store, with frame arrays read by :class:`FrameBackendArray`."""

    def open_store_variable(self, name: str) -> Variable:
        variable = super().open_store_variable(name)
        reader = FrameReader.for_array(self.members[name])
        if reader is None:
            return variable
        data = indexing.LazilyIndexedArray(FrameBackendArray(reader))
        return Variable(variable.dims, data, variable.attrs, variable.encoding)


class NersembleBackendEntrypoint(BackendEntrypoint):
    """``engine="nersemble"``: a converted store as ``engine="zarr"`` opens it, frames read straight from their
    shards (see the module docstring). Takes the zarr backend's options."""

    description = "Open nersemble_zarr stores with frame arrays read straight from their shards"
    supports_groups = True
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "group", "consolidated", "storage_options",
                               "zarr_format", "mask_and_scale", "decode_times", "concat_characters",
                               "decode_coords", "use_cftime", "decode_timedelta")

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        return False  # only when asked for by name: engine="zarr" is the default for .zarr paths

    def open_dataset(self, filename_or_obj: Any, *, drop_variables: str | Iterable[str] | None = None,
                     group: str | None = None, consolidated: bool | None = None,
                     storage_options: dict | None = None, zarr_format: int | None = None, **decoders: Any):
        store = _FrameStore.open_group(_normalize_path(filename_or_obj), group=group, mode="r",
                                       consolidated=consolidated, storage_options=storage_options,
                                       zarr_format=zarr_format)
        return ZarrBackendEntrypoint().open_dataset(filename_or_obj, store=store, drop_variables=drop_variables,
                                                    **decoders)

    def open_datatree(self, filename_or_obj: Any, **kwargs: Any) -> DataTree:
        return datatree_from_dict_with_io_cleanup(self.open_groups_as_dict(filename_or_obj, **kwargs))

    def open_groups_as_dict(self, filename_or_obj: Any, *, drop_variables: str | Iterable[str] | None = None,
                            group: str | None = None, consolidated: bool | None = None,
                            storage_options: dict | None = None, zarr_format: int | None = None,
                            **decoders: Any) -> dict[str, Any]:
        parent = str(NodePath("/") / NodePath(group)) if group else str(NodePath("/"))
        stores = _FrameStore.open_store(_normalize_path(filename_or_obj), group=parent, mode="r",
                                        consolidated=consolidated, storage_options=storage_options,
                                        zarr_format=zarr_format)
        groups = {}
        for path, store in stores.items():
            with close_on_error(store):
                dataset = StoreBackendEntrypoint().open_dataset(store, drop_variables=drop_variables, **decoders)
            groups[str(NodePath(path).relative_to(parent)) if group else str(NodePath(path))] = dataset
        return groups

