"""The on-disk layout of a store's frame arrays, as the zarr v3 spec defines it, for reading and writing whole
frames without zarr-python's intermediate copies (``chunk_reader``, ``shard_writer``).

A frame array here is a local uint8 zarr v3 array whose inner chunks each hold one whole frame (the trailing
``y, x[, channel]`` axes), encoded by the bytes serializer then zstd or Blosc, grouped into shards whose index
(``offset, nbytes`` uint64 pairs per inner chunk, then their crc32c) sits at the end, or unsharded.
:meth:`FrameLayout.of` returns ``None`` for anything else, and callers then go through zarr.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import google_crc32c
import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec
from zarr.codecs.sharding import ShardingCodecIndexLocation
from zarr.storage import LocalStore

from . import schema
from .errors import StoreError

EMPTY = np.iinfo(np.uint64).max
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


@dataclass(frozen=True)
class FrameLayout:
    """Where the frames of one array lie and how each is compressed."""

    array: zarr.Array
    root: Path                        # the array's folder
    frame_shape: tuple[int, ...]
    shard_frames: tuple[int, ...]     # frames per shard along each leading axis (all 1 when unsharded)
    sharded: bool
    codec: Any                        # the numcodecs codec of the inner chunks
    content_size: Callable[[bytes], int | None]

    @classmethod
    def of(cls, array: zarr.Array) -> FrameLayout | None:
        """The layout of ``array``, or ``None`` when it is not a frame array as described above."""
        if not isinstance(array.store, LocalStore) or array.metadata.zarr_format != 3:
            return None
        names = tuple(array.metadata.dimension_names or ())
        if np.dtype(array.dtype) != np.uint8 or schema.Y not in names:
            return None
        lead = names.index(schema.Y)
        codecs = array.metadata.codecs
        sharded = len(codecs) == 1 and isinstance(codecs[0], ShardingCodec)
        if sharded:
            sharding = codecs[0]
            if not (sharding.index_location == ShardingCodecIndexLocation.end
                    and [type(c) for c in sharding.index_codecs] == [BytesCodec, Crc32cCodec]):
                return None
            codecs, inner = sharding.codecs, tuple(sharding.chunk_shape)
        else:
            inner = tuple(array.chunks)
        if inner != (1,) * lead + tuple(array.shape[lead:]):
            return None
        compression = _compression(codecs)
        if compression is None:
            return None
        return cls(
            array=array, root=Path(array.store.root) / array.path, frame_shape=tuple(array.shape[lead:]),
            shard_frames=tuple(array.shards[:lead]) if sharded else (1,) * lead, sharded=sharded,
            codec=compression[0], content_size=compression[1],
        )

    @property
    def lead(self) -> int:
        """Number of leading axes (one frame per index along them)."""
        return len(self.shard_frames)

    @property
    def chunks_per_shard(self) -> int:
        return int(np.prod(self.shard_frames))

    def file_of(self, index: tuple[int, ...]) -> Path:
        """The file holding the frame at leading ``index`` (its shard, or its own chunk file)."""
        coords = tuple(i // n for i, n in zip(index, self.shard_frames)) + (0,) * len(self.frame_shape)
        return self.root / self.array.metadata.encode_chunk_key(coords)

    def position_in_shard(self, index: tuple[int, ...]) -> int:
        """The frame's entry in its shard's index (C order over the shard's chunk grid)."""
        return int(np.ravel_multi_index([i % n for i, n in zip(index, self.shard_frames)], self.shard_frames))

    def encode_index(self, entries: np.ndarray) -> bytes:
        """A shard index: the (chunks, 2) offsets and lengths as little-endian uint64, then their crc32c."""
        raw = np.ascontiguousarray(entries, dtype="<u8").tobytes()
        return raw + struct.pack("<I", google_crc32c.value(raw))

    def decode_index(self, raw: bytes, path: Path) -> np.ndarray:
        """The (chunks, 2) entries of an index read from the end of ``path``, after checking its crc32c."""
        (checksum,) = struct.unpack("<I", raw[-4:])
        if google_crc32c.value(raw[:-4]) != checksum:
            raise StoreError(f"The shard {path} is corrupt: its index fails its crc32c checksum.")
        return np.frombuffer(raw[:-4], dtype="<u8").reshape(self.chunks_per_shard, 2)

    @property
    def index_bytes(self) -> int:
        return 16 * self.chunks_per_shard + 4


def _compression(codecs: tuple) -> tuple[Any, Callable[[bytes], int | None]] | None:
    """The numcodecs codec and header-size reader for a (bytes, zstd | blosc) chain, else ``None``."""
    if len(codecs) != 2 or not isinstance(codecs[0], BytesCodec):
        return None
    codec = codecs[1]
    if isinstance(codec, ZstdCodec):
        return numcodecs.Zstd(level=codec.level, checksum=codec.checksum), _zstd_content_size
    if isinstance(codec, BloscCodec):
        blosc = numcodecs.Blosc(cname=codec.cname.value, clevel=codec.clevel,
                                shuffle=BLOSC_SHUFFLE[codec.shuffle.value], blocksize=codec.blocksize)
        return blosc, _blosc_content_size
    return None


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
