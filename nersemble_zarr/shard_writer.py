"""Write one camera's frames into a frame array, compressing each frame as it arrives and writing whole shards.

zarr-python writes a shard by building a fill-value array for each inner chunk, copying the frame into it and
only then compressing it: two extra passes over every 5 MiB frame. For a frame array (``frame_layout``)
:class:`ShardWriter` compresses each frame once, with the array's own codec settings, and writes the shard
(chunks, then the crc32c-checked index) atomically under its final name. Other arrays get
:class:`ZarrFrameWriter`, which buffers a shard and assigns it through zarr.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import zarr

from .atomic import atomic_path
from .frame_layout import EMPTY, FrameLayout


class FrameSink(Protocol):
    """Takes the frames of one camera in order; ``close`` writes what is left and returns the frame count."""

    def add(self, frame: np.ndarray) -> None: ...

    def close(self) -> int: ...


class ShardWriter:
    """Frames along the last leading axis (time) at a fixed ``prefix`` (the camera), written shard by shard."""

    def __init__(self, layout: FrameLayout, prefix: tuple[int, ...]) -> None:
        self._layout = layout
        self._prefix = prefix
        self._per_shard = layout.shard_frames[-1]
        self._chunks: list[bytes] = []
        self._written = 0

    @classmethod
    def for_array(cls, array: zarr.Array, prefix: tuple[int, ...]) -> ShardWriter | None:
        """A writer for ``array`` at ``prefix``, or ``None`` when it is not a frame array sharded along time only."""
        layout = FrameLayout.of(array)
        if layout is None or len(prefix) != layout.lead - 1 or any(n != 1 for n in layout.shard_frames[:-1]):
            return None
        return cls(layout, prefix)

    def add(self, frame: np.ndarray) -> None:
        if self._written + len(self._chunks) >= self._layout.array.shape[self._layout.lead - 1]:
            raise IndexError("More frames than the array holds along time.")
        self._chunks.append(self._layout.codec.encode(np.ascontiguousarray(frame)))
        if len(self._chunks) == self._per_shard:
            self._flush()

    def close(self) -> int:
        if self._chunks:
            self._flush()
        return self._written

    def _flush(self) -> None:
        layout = self._layout
        index = np.full((layout.chunks_per_shard, 2), EMPTY, dtype=np.uint64)
        lengths = np.array([len(chunk) for chunk in self._chunks], dtype=np.uint64)
        index[: len(lengths), 0] = np.cumsum(lengths) - lengths
        index[: len(lengths), 1] = lengths
        path = layout.file_of(self._prefix + (self._written,))
        for leftover in path.parent.glob(f".{path.name}.*.part*"):  # what a killed writer of this shard left
            leftover.unlink(missing_ok=True)
        with atomic_path(path) as temporary, open(temporary, "xb") as handle:
            handle.writelines(self._chunks)
            handle.write(layout.encode_index(index))
        self._written += len(self._chunks)
        self._chunks = []


class ZarrFrameWriter:
    """The same through zarr: a shard's frames are buffered and assigned as one slice."""

    def __init__(self, array: zarr.Array, prefix: tuple[int, ...]) -> None:
        self._array = array.with_config({"write_empty_chunks": True})  # frames are never all zero: skip the scan
        self._prefix = prefix
        lead = len(prefix)
        per_shard = array.shards[lead] if array.shards else array.chunks[lead]
        self._buffer = np.empty((per_shard,) + array.shape[lead + 1:], dtype=array.dtype)
        self._filled = self._written = 0

    def add(self, frame: np.ndarray) -> None:
        self._buffer[self._filled] = frame
        self._filled += 1
        if self._filled == len(self._buffer):
            self._flush()

    def close(self) -> int:
        if self._filled:
            self._flush()
        return self._written

    def _flush(self) -> None:
        start = self._written
        self._array[self._prefix + (slice(start, start + self._filled),)] = self._buffer[: self._filled]
        self._written, self._filled = start + self._filled, 0


def frame_sink(array: zarr.Array, prefix: tuple[int, ...]) -> FrameSink:
    """The fastest writer of ``array``'s frames at ``prefix`` along time: direct shards, else through zarr."""
    return ShardWriter.for_array(array, prefix) or ZarrFrameWriter(array, prefix)
