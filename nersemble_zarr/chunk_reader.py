"""Read whole frames of a store's image arrays straight from disk into numpy arrays (the fast random-access path).

zarr-python reads one inner chunk of a shard by decoding it into a new buffer, copying that into a
shard-sized buffer and copying again into the result: three passes over a 5 MiB frame where one would do.
For a frame array (``frame_layout``: local, the codecs ``convert`` writes), :class:`FrameReader` reads the
chunk's bytes with one ``pread`` through the shard's checked index and decompresses them directly into the
output array. Anything else (object storage, other codecs, a chunk never written) is read through zarr, so
results are always zarr's, except that a frame whose chunk is absent although its camera is flagged as written
(a deleted shard) is a MissingChunk error naming the store, variable, camera and timestep, where zarr would
return its fill value (a black frame).
"""

from __future__ import annotations

import functools
import itertools
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import zarr

from . import schema, storage
from .errors import CorruptChunk, StoreError
from .frame_layout import EMPTY, FrameLayout
from .integrity import is_flagged, missing_chunk

OPEN_SHARDS = 16  # shard indices kept per array (a camera's shard holds 32 frames)


class _LeftToZarr(Exception):
    """A chunk this reader leaves to zarr: never written, or a zstd frame that does not declare its size."""


@dataclass(frozen=True)
class _ShardIndex:
    """Byte offsets and lengths of a shard file's inner chunks, with the file identity they belong to."""

    identity: tuple[int, int, int]  # (inode, size, mtime_ns): a replaced shard gets its index read again
    entries: np.ndarray             # (chunks per shard, 2) uint64


class FrameReader:
    """Reads one whole frame (an inner chunk spanning the trailing axes) of a zarr v3 array per call.

    Build it with :meth:`for_array`, which returns ``None`` when the array's layout has no fast path.
    """

    def __init__(self, layout: FrameLayout) -> None:
        self._layout = layout
        self._indices: OrderedDict[Path, _ShardIndex] = OrderedDict()
        self._capacity = OPEN_SHARDS
        self._all_indices_read = False

    @property
    def lead(self) -> int:
        """Number of leading axes: one frame per index along them."""
        return self._layout.lead

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._layout.array.shape)

    def read_all_indices(self) -> None:
        """Read and check the index of every written shard of the array now, in one pass, and keep them all:
        a fresh process's first read of each shard then costs what a later read does. Once per reader."""
        if self._all_indices_read or not self._layout.sharded:
            return
        layout = self._layout
        starts = itertools.product(*(range(0, n, step) for n, step in zip(self.shape, layout.shard_frames)))
        paths = [layout.file_of(start) for start in starts]
        self._capacity = max(OPEN_SHARDS, len(paths))
        for path in paths:
            try:
                descriptor = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # not written yet: its first read looks again
                continue
            try:
                status = os.fstat(descriptor)
                identity = (status.st_ino, status.st_size, status.st_mtime_ns)
                self._indices[path] = _ShardIndex(identity, self._read_index(descriptor, status.st_size, path))
            except StoreError:  # a damaged shard: its own reads say so, the others' go on
                pass
            finally:
                os.close(descriptor)
        self._all_indices_read = True

    @classmethod
    def for_array(cls, array: zarr.Array) -> FrameReader | None:
        """A reader for ``array``, or ``None`` when it is not a frame array (then read it with zarr)."""
        layout = FrameLayout.of(array)
        return None if layout is None else cls(layout)

    def read(self, index: tuple[int, ...]) -> np.ndarray:
        """The frame at the leading ``index`` (one integer per leading axis) as a new uint8 array."""
        layout = self._layout
        shape = layout.array.shape
        if len(index) != layout.lead or any(not 0 <= i < n for i, n in zip(index, shape)):
            raise IndexError(f"Frame index {index} is outside the array's leading shape {shape[:layout.lead]}.")
        out = np.empty(layout.frame_shape, dtype=np.uint8)
        path = layout.file_of(index)
        try:
            data = self._chunk_bytes(path, index) if layout.sharded else path.read_bytes()
            if data is None:
                raise FileNotFoundError(path)
            self._decompress(data, out)
        except FileNotFoundError:
            _check_never_written(layout, index, path)
            out[...] = _read_through_zarr(layout.array, index)
        except _LeftToZarr:
            out[...] = _read_through_zarr(layout.array, index)
        except StoreError:
            raise
        except Exception as error:
            raise StoreError(f"Frame {index} of {layout.root} could not be decompressed ({error}).") from error
        return out

    def _decompress(self, data: bytes, out: np.ndarray) -> None:
        # numcodecs fills a larger output only partly without complaint: check the stored size first.
        size = self._layout.content_size(data)
        if size is None:
            raise _LeftToZarr
        if size != out.nbytes:
            raise ValueError(f"the chunk holds {size} bytes, not the {out.nbytes} of a frame")
        self._layout.codec.decode(data, out=out)

    def _chunk_bytes(self, path: Path, index: tuple[int, ...]) -> bytes | None:
        """The inner chunk's bytes read through the shard index, or ``None`` when the chunk is empty."""
        with open(path, "rb") as file:
            status = os.fstat(file.fileno())
            identity = (status.st_ino, status.st_size, status.st_mtime_ns)
            shard_index = self._indices.get(path)
            if shard_index is None or shard_index.identity != identity:
                shard_index = _ShardIndex(identity, self._read_index(file.fileno(), status.st_size, path))
                self._indices[path] = shard_index
                if len(self._indices) > self._capacity:
                    self._indices.popitem(last=False)
            self._indices.move_to_end(path)
            offset, length = (int(v) for v in shard_index.entries[self._layout.position_in_shard(index)])
            if offset == EMPTY:
                return None
            if offset + length > status.st_size:
                raise StoreError(f"The shard {path} is truncated: frame {index} ends beyond the file.")
            return os.pread(file.fileno(), length, offset)

    def _read_index(self, descriptor: int, size: int, path: Path) -> np.ndarray:
        """The shard's index (at its end: uint64 pairs, then their crc32c), checked."""
        if size < self._layout.index_bytes:
            raise StoreError(f"The shard {path} is truncated: it is smaller than its index.")
        index_bytes = self._layout.index_bytes
        return self._layout.decode_index(os.pread(descriptor, index_bytes, size - index_bytes), path)


def frame_reader(array: zarr.Array) -> Callable[[tuple[int, ...]], np.ndarray]:
    """``read(index)`` for the frames of ``array``: the direct path when it has one, else zarr's indexing."""
    reader = FrameReader.for_array(array)
    return reader.read if reader is not None else functools.partial(_read_through_zarr, array)


def _read_through_zarr(array: zarr.Array, index: tuple[int, ...]) -> np.ndarray:
    """The frame at ``index`` read by zarr, a chunk that does not decode (truncated, overwritten) a CorruptChunk."""
    try:
        return np.asarray(array[index])
    except StoreError:  # our codecs' own sentences (a corrupt JPEG XL chunk)
        raise
    except Exception as error:  # each codec fails its own way on damaged bytes (ValueError, EOFError, ...)
        raise CorruptChunk(f"Frame {index} of {array.store}/{array.path} could not be read "
                           f"({type(error).__name__}: {error}).") from error


def _check_never_written(layout: FrameLayout, index: tuple[int, ...], path: Path) -> None:
    """Raise the one MissingChunk for a frame whose chunk is absent (its shard or chunk file, or its entry in the
    shard) although its group's flags say it was written; a frame never written reads as the fill value."""
    store = str(layout.array.store.root)
    group_path, _, variable = layout.array.path.rpartition("/")
    group = zarr.open_group(store, path=group_path, mode="r", zarr_format=3, use_consolidated=False)
    if is_flagged(group, variable, index):
        raise missing_chunk(store, group, variable, index, str(path)) from None


@dataclass(frozen=True)
class StoredFrames:
    """The frames of one array of a stored sequence group, addressed by camera serial and original timestep."""

    read_index: Callable[[tuple[int, ...]], np.ndarray]
    serial_index: dict[str, int]
    timestep_index: dict[int, int]
    written: frozenset[str] | None  # cameras flagged written when this reader was made (None: no flags)

    def read(self, serial: str, timestep: int) -> np.ndarray:
        """The frame of camera ``serial`` at ``timestep`` (KeyError when the group has no such frame)."""
        return self.read_index((self.serial_index[serial], self.timestep_index[int(timestep)]))

    def was_written(self, serial: str) -> bool:
        """Whether camera ``serial`` was flagged written when this reader was made (True without flags); a
        camera flagged since then still reads False, so a refusal should look at the flags again."""
        return self.written is None or serial in self.written


def stored_frames(store: str, group: str, variable: str) -> StoredFrames:
    """The (cached) :class:`StoredFrames` of ``group/variable``; a rewritten array is opened again."""
    return _stored_frames(store, group, variable, metadata_stamp(store, f"{group}/{variable}"))


@functools.lru_cache(maxsize=32)
def _stored_frames(store: str, group: str, variable: str, stamp: int | None) -> StoredFrames:
    array = storage.open_array(store, f"{group}/{variable}")
    reader = FrameReader.for_array(array)
    if reader is not None:
        reader.read_all_indices()
    serials = storage.open_array(store, f"{group}/{schema.SERIAL}")[...]
    timesteps = storage.open_array(store, f"{group}/{schema.TIMESTEP}")[...]
    written = None
    if storage.array_exists(store, f"{group}/{schema.converted_flag(variable)}"):
        flags = storage.camera_flag(store, group, variable)
        written = frozenset(str(serial) for serial, flag in zip(serials, flags) if flag)
    return StoredFrames(
        read_index=reader.read if reader is not None else lambda index: np.asarray(array[index]),
        serial_index={str(serial): i for i, serial in enumerate(serials)},
        timestep_index={int(timestep): i for i, timestep in enumerate(timesteps)},
        written=written,
    )


def metadata_stamp(store: str, path: str) -> int | None:
    """The modification time of a local array's ``zarr.json`` (``None`` for object storage)."""
    try:
        return os.stat(os.path.join(store, path, "zarr.json")).st_mtime_ns
    except OSError:
        return None
