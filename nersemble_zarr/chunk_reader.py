"""Read whole frames of a store's image arrays straight from disk into numpy arrays (the fast random-access path).

zarr-python reads one inner chunk of a shard by decoding it into a new buffer, copying that into a
shard-sized buffer and copying again into the result: three passes over a 5 MiB frame where one would do.
For a frame array on local disk whose codecs are the ones ``convert`` writes (the bytes serializer, then zstd
or blosc, inside a shard with a crc32c-checked index, or unsharded), :class:`FrameReader` reads the chunk's
bytes with one ``pread`` and decompresses them directly into the output array. Anything else (object storage,
other codecs, a chunk not yet written) is read through zarr, so results are always zarr's.
"""

from __future__ import annotations

import functools
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import google_crc32c
import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec
from zarr.codecs.sharding import ShardingCodecIndexLocation
from zarr.storage import LocalStore

from . import schema, storage
from .errors import StoreError

EMPTY = np.iinfo(np.uint64).max
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
OPEN_SHARDS = 16  # shard indices kept per array (a camera's shard holds 32 frames)

Decompress = Callable[[bytes, np.ndarray], None]


class _UndeclaredSize(Exception):
    """A chunk this reader leaves to zarr: not written yet, or a zstd frame that does not declare its size."""


@dataclass(frozen=True)
class _ShardIndex:
    """Byte offsets and lengths of a shard file's inner chunks, with the file identity they belong to."""

    identity: tuple[int, int, int]  # (inode, size, mtime_ns): a replaced shard gets its index read again
    entries: np.ndarray             # (chunks per shard, 2) uint64


class FrameReader:
    """Reads one whole frame (an inner chunk spanning the trailing axes) of a zarr v3 array per call.

    Build it with :meth:`for_array`, which returns ``None`` when the array's layout has no fast path.
    """

    def __init__(self, array: zarr.Array, decompress: Decompress, sharding: ShardingCodec | None) -> None:
        self._array = array
        self._root = Path(array.store.root) / array.path
        self._decompress = decompress
        self._sharding = sharding
        self._frame_shape = tuple(array.shape[len(array.shape) - _frame_ndim(array):])
        self._lead = len(array.shape) - len(self._frame_shape)
        self._shard_lead = tuple(array.shards[: self._lead]) if sharding is not None else (1,) * self._lead
        self._indices: OrderedDict[Path, _ShardIndex] = OrderedDict()

    @classmethod
    def for_array(cls, array: zarr.Array) -> FrameReader | None:
        """A reader for ``array``, or ``None`` when it is not a local array of whole-frame chunks with
        codecs this reader decodes exactly (then read it with zarr)."""
        if not isinstance(array.store, LocalStore) or array.metadata.zarr_format != 3:
            return None
        if np.dtype(array.dtype) != np.uint8:
            return None
        codecs = array.metadata.codecs
        sharding = codecs[0] if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec) else None
        if sharding is not None:
            index_ok = (sharding.index_location == ShardingCodecIndexLocation.end
                        and [type(c) for c in sharding.index_codecs] == [BytesCodec, Crc32cCodec])
            if not index_ok:
                return None
            codecs, inner_chunks = sharding.codecs, sharding.chunk_shape
        else:
            inner_chunks = array.chunks
        decompress = _decompressor(codecs)
        ndim = _frame_ndim(array)
        if ndim == 0:
            return None
        lead = len(array.shape) - ndim
        whole_frames = tuple(inner_chunks[:lead]) == (1,) * lead and tuple(inner_chunks[lead:]) == array.shape[lead:]
        if decompress is None or not whole_frames:
            return None
        return cls(array, decompress, sharding)

    def read(self, index: tuple[int, ...]) -> np.ndarray:
        """The frame at the leading ``index`` (one integer per leading axis) as a new uint8 array."""
        if len(index) != self._lead or any(not 0 <= i < n for i, n in zip(index, self._array.shape)):
            raise IndexError(f"Frame index {index} is outside the array's leading shape {self._array.shape[:self._lead]}.")
        out = np.empty(self._frame_shape, dtype=np.uint8)
        shard_coords = tuple(i // n for i, n in zip(index, self._shard_lead)) + (0,) * len(self._frame_shape)
        path = self._root / self._array.metadata.encode_chunk_key(shard_coords)
        try:
            data = self._chunk_bytes(path, index) if self._sharding is not None else path.read_bytes()
        except FileNotFoundError:
            data = None
        try:
            if data is None:  # not written yet: zarr fills it in
                raise _UndeclaredSize
            self._decompress(data, out)
        except _UndeclaredSize:
            out[...] = self._array[index]
        except Exception as error:
            raise StoreError(f"Frame {index} of {self._root} could not be decompressed ({error}).") from error
        return out

    def _chunk_bytes(self, path: Path, index: tuple[int, ...]) -> bytes | None:
        """The inner chunk's bytes read through the shard index, or ``None`` when the chunk is empty."""
        with open(path, "rb") as file:
            status = os.fstat(file.fileno())
            identity = (status.st_ino, status.st_size, status.st_mtime_ns)
            shard_index = self._indices.get(path)
            if shard_index is None or shard_index.identity != identity:
                shard_index = _ShardIndex(identity, self._read_index(file.fileno(), status.st_size, path))
                self._indices[path] = shard_index
                if len(self._indices) > OPEN_SHARDS:
                    self._indices.popitem(last=False)
            self._indices.move_to_end(path)
            position = np.ravel_multi_index([i % n for i, n in zip(index, self._shard_lead)], self._shard_lead)
            offset, length = (int(v) for v in shard_index.entries[position])
            if offset == EMPTY:
                return None
            if offset + length > status.st_size:
                raise StoreError(f"The shard {path} is truncated: frame {index} ends beyond the file.")
            return os.pread(file.fileno(), length, offset)

    def _read_index(self, descriptor: int, size: int, path: Path) -> np.ndarray:
        """The shard's index (at its end: uint64 pairs, then their crc32c), checked."""
        count = int(np.prod(self._shard_lead))
        index_bytes = 16 * count
        if size < index_bytes + 4:
            raise StoreError(f"The shard {path} is truncated: it is smaller than its index.")
        raw = os.pread(descriptor, index_bytes + 4, size - index_bytes - 4)
        (checksum,) = struct.unpack("<I", raw[-4:])
        if google_crc32c.value(raw[:-4]) != checksum:
            raise StoreError(f"The shard {path} is corrupt: its index fails its crc32c checksum.")
        return np.frombuffer(raw[:-4], dtype="<u8").reshape(count, 2)


def _frame_ndim(array: zarr.Array) -> int:
    """Axes of one frame: those from ``y`` on (y, x and, for colour arrays, channel)."""
    names = array.metadata.dimension_names or ()
    return len(names) - names.index(schema.Y) if schema.Y in names else 0


def _decompressor(codecs: tuple) -> Decompress | None:
    """How to decompress one chunk into its output for the inner codec chain, or ``None`` if unsupported."""
    if len(codecs) != 2 or not isinstance(codecs[0], BytesCodec):
        return None
    if isinstance(codecs[1], ZstdCodec):
        codec, content_size = numcodecs.Zstd(), _zstd_content_size
    elif isinstance(codecs[1], BloscCodec):
        codec, content_size = numcodecs.Blosc(), _blosc_content_size
    else:
        return None

    def decompress(data: bytes, out: np.ndarray) -> None:
        # numcodecs fills a larger output only partly without complaint: check the stored size first.
        size = content_size(data)
        if size is None:
            raise _UndeclaredSize
        if size != out.nbytes:
            raise ValueError(f"the chunk holds {size} bytes, not the {out.nbytes} of a frame")
        codec.decode(data, out=out)

    return decompress


def _blosc_content_size(data: bytes) -> int:
    """The decompressed size in a Blosc header (bytes 4-7, little-endian)."""
    if len(data) < 16:
        raise ValueError("the chunk is shorter than a Blosc header")
    return int.from_bytes(data[4:8], "little")


def _zstd_content_size(data: bytes) -> int | None:
    """The decompressed size a zstd frame header declares (``None`` when the header declares none)."""
    if len(data) < 6 or data[:4] != ZSTD_MAGIC:
        raise ValueError("the chunk is not a zstd frame")
    descriptor = data[4]
    single_segment = bool(descriptor & 0x20)
    field_size = (0, 2, 4, 8)[descriptor >> 6] or (1 if single_segment else 0)
    start = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 0x03]
    if field_size == 0 or len(data) < start + field_size:
        return None
    size = int.from_bytes(data[start:start + field_size], "little")
    return size + 256 if field_size == 2 else size


def frame_reader(array: zarr.Array) -> Callable[[tuple[int, ...]], np.ndarray]:
    """``read(index)`` for the frames of ``array``: the direct path when it has one, else zarr's indexing."""
    reader = FrameReader.for_array(array)
    return reader.read if reader is not None else lambda index: np.asarray(array[index])


@dataclass(frozen=True)
class StoredFrames:
    """The frames of one array of a stored sequence group, addressed by camera serial and original timestep."""

    read_index: Callable[[tuple[int, ...]], np.ndarray]
    serial_index: dict[str, int]
    timestep_index: dict[int, int]

    def read(self, serial: str, timestep: int) -> np.ndarray:
        """The frame of camera ``serial`` at ``timestep`` (KeyError when the group has no such frame)."""
        return self.read_index((self.serial_index[serial], self.timestep_index[int(timestep)]))


def stored_frames(store: str, group: str, variable: str) -> StoredFrames:
    """The (cached) :class:`StoredFrames` of ``group/variable``; a rewritten array is opened again."""
    return _stored_frames(store, group, variable, _metadata_stamp(store, f"{group}/{variable}"))


@functools.lru_cache(maxsize=32)
def _stored_frames(store: str, group: str, variable: str, stamp: int | None) -> StoredFrames:
    array = storage.open_array(store, f"{group}/{variable}")
    serials = storage.open_array(store, f"{group}/{schema.SERIAL}")[...]
    timesteps = storage.open_array(store, f"{group}/{schema.TIMESTEP}")[...]
    return StoredFrames(
        read_index=frame_reader(array),
        serial_index={str(serial): i for i, serial in enumerate(serials)},
        timestep_index={int(timestep): i for i, timestep in enumerate(timesteps)},
    )


def _metadata_stamp(store: str, path: str) -> int | None:
    """The modification time of a local array's ``zarr.json`` (``None`` for object storage)."""
    try:
        return os.stat(os.path.join(store, path, "zarr.json")).st_mtime_ns
    except OSError:
        return None
