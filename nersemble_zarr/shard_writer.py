"""Write one camera's frames into a frame array, compressing each frame as it arrives and writing whole shards.

zarr-python writes a shard by building a fill-value array for each inner chunk, copying the frame into it and
only then compressing it: two extra passes over every 5 MiB frame. For a frame array (``frame_layout``)
:class:`ShardWriter` compresses each frame once, with the array's own codec settings, and appends it to the shard's
temporary file at once (a shard's frames are never all held in memory: 32 frames of 13 MiB at full resolution);
the crc32c-checked index and the rename to the final name come last, so a shard appears whole or not at all.
Other arrays get :class:`ZarrFrameWriter`, which buffers a shard and assigns it through zarr.

Use a sink as a context manager: leaving it on an error or an interrupt removes the shard it was writing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import zarr

from .atomic import PendingFile
from .frame_layout import EMPTY, FrameLayout


class FrameSink(Protocol):
    """Takes the frames of one camera in order; ``close`` writes what is left and returns the frame count;
    ``discard`` drops what is not written yet (the context manager's exit on an error)."""

    def add(self, frame: np.ndarray) -> None: ...

    def close(self) -> int: ...

    def discard(self) -> None: ...

    def __enter__(self) -> FrameSink: ...

    def __exit__(self, kind, error, traceback) -> None: ...


class _SinkContext:
    """``with sink:`` discards the unwritten rest (the subclass's ``discard``) when the block ends in an exception."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None:
            self.discard()


class _ShardFile:
    """One shard being written: its compressed chunks go to a temporary file beside it as they come."""

    def __init__(self, path: Path) -> None:
        self._file = PendingFile(path)
        for leftover in path.parent.glob(f".{path.name}.*.part*"):  # what a killed writer of this shard left
            leftover.unlink(missing_ok=True)
        self._handle = open(self._file.temporary, "xb")
        self.lengths: list[int] = []

    def append(self, chunk: bytes) -> None:
        self._handle.write(chunk)
        self.lengths.append(len(chunk))

    def finish(self, index: bytes) -> None:
        """Write the index and put the shard under its final name."""
        try:
            self._handle.write(index)
            self._handle.close()
            self._file.commit()
        finally:
            self.discard()

    def discard(self) -> None:
        self._handle.close()
        self._file.discard()


class ShardWriter(_SinkContext):
    """Frames along the last leading axis (time) at a fixed ``prefix`` (the camera), written shard by shard."""

    def __init__(self, layout: FrameLayout, prefix: tuple[int, ...]) -> None:
        self._layout = layout
        self._prefix = prefix
        self._per_shard = layout.shard_frames[-1]
        self._shard: _ShardFile | None = None
        self._written = 0

    @classmethod
    def for_array(cls, array: zarr.Array, prefix: tuple[int, ...]) -> ShardWriter | None:
        """A writer for ``array`` at ``prefix``, or ``None`` when it is not a frame array sharded along time only."""
        layout = FrameLayout.of(array)
        if layout is None or len(prefix) != layout.lead - 1 or any(n != 1 for n in layout.shard_frames[:-1]):
            return None
        return cls(layout, prefix)

    def add(self, frame: np.ndarray) -> None:
        pending = len(self._shard.lengths) if self._shard else 0
        if self._written + pending >= self._layout.array.shape[self._layout.lead - 1]:
            raise IndexError("More frames than the array holds along time.")
        chunk = self._layout.codec.encode(np.ascontiguousarray(frame))
        if self._shard is None:
            self._shard = _ShardFile(self._layout.file_of(self._prefix + (self._written,)))
        self._shard.append(chunk)
        if len(self._shard.lengths) == self._per_shard:
            self._finish_shard()

    def close(self) -> int:
        if self._shard is not None:
            self._finish_shard()
        return self._written

    def discard(self) -> None:
        if self._shard is not None:
            self._shard.discard()
            self._shard = None

    def _finish_shard(self) -> None:
        layout, shard = self._layout, self._shard
        index = np.full((layout.chunks_per_shard, 2), EMPTY, dtype=np.uint64)
        lengths = np.array(shard.lengths, dtype=np.uint64)
        index[: len(lengths), 0] = np.cumsum(lengths) - lengths
        index[: len(lengths), 1] = lengths
        self._shard = None
        shard.finish(layout.encode_index(index))
        self._written += len(lengths)


class ZarrFrameWriter(_SinkContext):
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

    def discard(self) -> None:
        self._filled = 0

    def _flush(self) -> None:
        start = self._written
        self._array[self._prefix + (slice(start, start + self._filled),)] = self._buffer[: self._filled]
        self._written, self._filled = start + self._filled, 0


def frame_sink(array: zarr.Array, prefix: tuple[int, ...]) -> FrameSink:
    """The fastest writer of ``array``'s frames at ``prefix`` along time: direct shards, else through zarr."""
    return ShardWriter.for_array(array, prefix) or ZarrFrameWriter(array, prefix)
