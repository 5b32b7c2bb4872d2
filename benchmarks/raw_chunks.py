"""The raw limit of a random frame read: a zarr v3 chunk's bytes read from its file and decompressed by hand.

Nothing of zarr runs: the array's ``zarr.json`` says where the chunk lies and how it was compressed. For a
sharded array (``sharding_indexed``) the shard's index (16 bytes per inner chunk: offset and length as
little-endian uint64, then a 4-byte crc32c when the index codecs say so; at the end of the shard file unless
``index_location`` is ``start``) is read once per shard file and kept; the chunk's byte range is then read
with one ``pread`` and decompressed with the same compressor (zstd, or blosc) into a new uint8 array.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

INDEX_ENTRY_BYTES = 16
CRC32C_BYTES = 4
MISSING = 2**64 - 1


class RawChunkReader:
    """Frames of one local zarr v3 uint8 array whose chunks hold whole frames, read without zarr."""

    def __init__(self, array_dir: Path) -> None:
        meta = json.loads((array_dir / "zarr.json").read_text(encoding="utf-8"))
        if meta.get("data_type") != "uint8":
            raise ValueError(f"{array_dir}: the raw reader reads uint8 arrays, not {meta.get('data_type')}.")
        encoding = meta["chunk_key_encoding"]
        if encoding["name"] != "default":
            raise ValueError(f"{array_dir}: chunk key encoding {encoding['name']!r} is not supported.")
        self.directory = array_dir
        self.separator = encoding.get("configuration", {}).get("separator", "/")
        self.shape = tuple(meta["shape"])
        self.file_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])  # a shard, or a chunk
        codecs = meta["codecs"]
        self.sharded = codecs[0]["name"] == "sharding_indexed"
        if self.sharded:
            sharding = codecs[0]["configuration"]
            self.chunk_shape = tuple(sharding["chunk_shape"])
            codecs = sharding["codecs"]
            self.chunks_per_file = tuple(f // c for f, c in zip(self.file_shape, self.chunk_shape))
            n_chunks = math.prod(self.chunks_per_file)
            checksum = any(codec["name"] == "crc32c" for codec in sharding["index_codecs"])
            self.index_bytes = n_chunks * INDEX_ENTRY_BYTES + (CRC32C_BYTES if checksum else 0)
            self.index_at_end = sharding.get("index_location", "end") == "end"
        else:
            self.chunk_shape = self.file_shape
        self.decompress = _decompressor(codecs, array_dir)
        self._files: dict[tuple[int, ...], int] = {}
        self._indexes: dict[tuple[int, ...], np.ndarray] = {}

    def read(self, *position: int) -> np.ndarray:
        """``array[position]`` (leading indices, e.g. serial and timestep) as a new array."""
        full = tuple(position) + (0,) * (len(self.shape) - len(position))
        file_key = tuple(p // f for p, f in zip(full, self.file_shape))
        descriptor = self._open(file_key)
        if self.sharded:
            index = self._index(file_key, descriptor)
            inner = tuple((p % f) // c for p, f, c in zip(full, self.file_shape, self.chunk_shape))
            offset, nbytes = (int(v) for v in index[np.ravel_multi_index(inner, self.chunks_per_file)])
            if offset == MISSING:
                raise ValueError(f"{self.directory}: chunk {inner} of shard {file_key} was never written.")
        else:
            offset, nbytes = 0, os.fstat(descriptor).st_size
        chunk = np.empty(self.chunk_shape, dtype=np.uint8)
        self.decompress(os.pread(descriptor, nbytes, offset), chunk)
        within = tuple(p % c for p, c in zip(full, self.chunk_shape))[: len(position)]
        return chunk[within]

    def _open(self, file_key: tuple[int, ...]) -> int:
        if file_key not in self._files:
            name = self.separator.join(["c", *map(str, file_key)])
            self._files[file_key] = os.open(self.directory / name, os.O_RDONLY)
        return self._files[file_key]

    def _index(self, file_key: tuple[int, ...], descriptor: int) -> np.ndarray:
        if file_key not in self._indexes:
            size = os.fstat(descriptor).st_size
            start = size - self.index_bytes if self.index_at_end else 0
            raw = os.pread(descriptor, self.index_bytes, start)
            entries = len(raw) // INDEX_ENTRY_BYTES * INDEX_ENTRY_BYTES
            self._indexes[file_key] = np.frombuffer(raw[:entries], dtype="<u8").reshape(-1, 2)
        return self._indexes[file_key]

    def close(self) -> None:
        """Close the shard files."""
        for descriptor in self._files.values():
            os.close(descriptor)
        self._files.clear()


def _decompressor(codecs: list[dict], where: Path):
    """``decompress(data, out)`` for an inner codec chain of ``bytes`` followed by one zstd or blosc compressor."""
    names = [codec["name"] for codec in codecs]
    if names == ["bytes", "zstd"]:
        from numcodecs import Zstd

        return Zstd().decode
    if names == ["bytes", "blosc"]:
        from numcodecs import Blosc

        return Blosc().decode
    raise ValueError(f"{where}: the raw reader supports bytes + zstd or blosc, not {' + '.join(names)}.")
