"""Sources of predicted frames: one video read block by block, so memory stays bounded at any length.

A source is small and picklable (it holds a lazy array, a store path or a list of file names), so a
dask.distributed worker can read the frames itself.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from ..errors import NersembleError, SubmissionError

# Frames read at once are capped at this many bytes of source data (3 full-size NVS uint8 frames). Blocks
# under glibc's 32 MiB mmap limit are reused from the heap; larger ones are mapped and page-faulted afresh
# each time, in system time (docs/submission.md, Performance).
BLOCK_BYTES = 16 * 2**20


class FrameSource(Protocol):
    """One predicted video: its name in the zip, its length, and its frames in blocks (k, H, W, 3)."""

    video: str
    n_frames: int

    def blocks(self) -> Iterator[np.ndarray]: ...


def plan_blocks(chunk_sizes: Sequence[int], max_frames: int) -> list[tuple[int, int]]:
    """Group consecutive storage chunks (sizes along time) into (start, stop) blocks of at most ``max_frames``.

    Blocks follow chunk boundaries so no chunk is read twice; a chunk longer than ``max_frames`` is split.
    """
    bounds: list[tuple[int, int]] = []
    start = block_start = 0
    for size in chunk_sizes:
        stop = start + size
        if size > max_frames:
            if block_start < start:
                bounds.append((block_start, start))
            bounds.extend((s, min(s + max_frames, stop)) for s in range(start, stop, max_frames))
            block_start = stop
        elif stop - block_start > max_frames:
            bounds.append((block_start, start))
            block_start = start
        start = stop
    if block_start < start:
        bounds.append((block_start, start))
    return bounds


@dataclass(frozen=True)
class ArrayVideo:
    """Frames (timestep, y, x, channel) of a numpy array, dask array or (lazy) xarray DataArray.

    ``time_chunks`` are the storage or dask chunk sizes along time (None: no preference).
    """

    video: str
    data: Any
    time_chunks: tuple[int, ...] | None = None

    @property
    def n_frames(self) -> int:
        return int(self.data.shape[0])

    def blocks(self) -> Iterator[np.ndarray]:
        frame_bytes = int(np.prod(self.data.shape[1:])) * np.dtype(self.data.dtype).itemsize
        max_frames = max(1, BLOCK_BYTES // max(frame_bytes, 1))
        for start, stop in plan_blocks(self.time_chunks or (1,) * self.n_frames, max_frames):
            yield self._read(start, stop)

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop``; a chunk that does not decode (truncated, overwritten) is one sentence."""
        try:
            block = self.data[start:stop]
            if _is_dask_collection(block):
                # Synchronous: this already runs inside one task per video (threads or a distributed worker).
                block = block.compute(scheduler="synchronous")
            return np.asarray(block)
        except NersembleError:  # our codecs' and readers' own sentences
            raise
        except Exception as error:  # each codec fails its own way on damaged bytes (ValueError, RuntimeError, ...)
            raise SubmissionError(f"Frames {start} to {stop - 1} of {self.video} could not be read "
                                  f"({type(error).__name__}: {error}).") from None


def _is_dask_collection(value: Any) -> bool:
    """Whether ``value`` is a dask collection (without importing dask when nothing made one)."""
    dask_base = sys.modules.get("dask.base")
    return dask_base is not None and dask_base.is_dask_collection(value)


@dataclass(frozen=True)
class StoredVideo:
    """One camera's frames of a local zarr v3 predictions store: the ``images`` array (serial, timestep, y, x,
    channel) at ``array_path``, camera ``serial_index``. Read one frame at a time, straight from its chunk
    (:mod:`nersemble_zarr.chunk_reader`; through zarr where that does not apply), so a video holds one frame of
    memory at a time."""

    video: str
    store: str
    array_path: str
    serial_index: int
    n_frames: int
    shape: tuple[int, int, int]
    dtype: np.dtype

    def blocks(self) -> Iterator[np.ndarray]:
        from ..chunk_reader import metadata_stamp

        read = _frame_reader(self.store, self.array_path, metadata_stamp(self.store, self.array_path))
        for position in range(self.n_frames):
            yield read((self.serial_index, position))[None]


@functools.lru_cache(maxsize=16)
def _frame_reader(store: str, array_path: str, stamp: int | None) -> Callable[[tuple[int, ...]], np.ndarray]:
    """The frame reader of an array, kept for the process (``stamp``: a rewritten array is opened again)."""
    import zarr

    from ..chunk_reader import frame_reader

    return frame_reader(zarr.open_array(store, path=array_path, mode="r", zarr_format=3))


@dataclass(frozen=True)
class ImageFolderVideo:
    """Frames stored as one PNG or JPEG file each, in frame order; every image must have ``shape``.
    ``numbers`` are the frame numbers the file names give (``00004.png``: 4), in the same order."""

    video: str
    files: tuple[Path, ...]
    shape: tuple[int, int, int]
    numbers: tuple[int, ...]

    @property
    def n_frames(self) -> int:
        return len(self.files)

    def blocks(self) -> Iterator[np.ndarray]:
        for path in self.files:
            image = read_image(path)
            if image.shape != self.shape:
                raise SubmissionError(
                    f"Image {path} has size {image.shape[1]}x{image.shape[0]}; the other frames of {self.video} "
                    f"are {self.shape[1]}x{self.shape[0]}."
                )
            yield image[None]


def read_image(path: Path) -> np.ndarray:
    """Decode a PNG or JPEG with PyAV into (H, W, 3) uint8 RGB (an alpha channel is dropped)."""
    import av

    try:
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            return frame.to_ndarray(format="rgb24")
    except (av.FFmpegError, StopIteration, OSError, ValueError) as error:
        raise SubmissionError(f"Image {path} is not a readable PNG or JPEG ({error}).") from error


@dataclass(frozen=True)
class ZipVideo:
    """One mp4 entry ``video`` of a submission zip, decoded frame by frame from a private temporary copy."""

    video: str
    archive: Path
    n_frames: int
    shape: tuple[int, int, int]
    max_bytes: int

    def blocks(self) -> Iterator[np.ndarray]:
        """Every frame in order; a frame that does not decode or breaks the header's size or pixel format, or
        fewer or more frames than the header's count, is refused by validate-submission's rules."""
        from ..errors import CorruptVideo
        from ..video import DecodeCount, iter_frames
        from .validator import decode_problems
        from .zipsafety import entry_copy

        delivered = 0
        with entry_copy(self.archive, self.video, self.max_bytes) as path:
            try:
                for frame in iter_frames(path):
                    delivered += 1
                    yield frame[None]
            except CorruptVideo as error:  # its message would name the private copy, not the entry
                raise SubmissionError(f"{self.video} in {self.archive} is corrupt {error.detail}.") from None
        problems = decode_problems(self.video, DecodeCount(delivered, ()), self.n_frames, self.n_frames)
        if problems:
            raise SubmissionError(f"{self.archive}: {problems[0]}")
