"""Decode one camera's video and write its frames into the store, shard by shard (one dask task)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import schema, storage
from ..errors import InputDataError
from ..video import iter_frames


@dataclass(frozen=True)
class VideoTask:
    """Write ``video`` (images or alpha of one camera) into ``variable[serial_index]`` of ``group``."""

    store: str
    group: str
    variable: str
    serial_index: int
    video: Path
    n_frames: int
    decode_threads: int = 1

    @property
    def label(self) -> str:
        return f"{self.group}/{self.variable}[{self.video.stem}]"


def run_video_task(task: VideoTask) -> BaseException | None:
    """Run a task; return (not raise) its error so every task finishes before the caller cleans up."""
    try:
        write_video(task)
    except Exception as error:  # returned to the orchestrator, which re-raises the first one
        return error
    return None


def write_video(task: VideoTask) -> None:
    """Stream-decode the video and write whole shards; mark the camera complete only at the end."""
    # Frames are never all zero, so skip zarr's per-chunk "is it empty?" scan (it costs more than zstd).
    array = storage.open_array(task.store, f"{task.group}/{task.variable}", mode="r+").with_config(
        {"write_empty_chunks": True}
    )
    shard = array.shards[1] if array.shards else array.chunks[1]
    buffer = np.empty((shard,) + array.shape[2:], dtype=np.uint8)
    gray = task.variable == schema.ALPHA
    written = filled = 0
    for frame in iter_frames(task.video, gray=gray, threads=task.decode_threads):
        if written + filled >= task.n_frames:
            raise InputDataError(f"The video {task.video} has more frames than the {task.n_frames} expected.")
        if frame.shape != buffer.shape[1:]:
            raise InputDataError(
                f"The video {task.video} has a frame of shape {frame.shape}; expected {buffer.shape[1:]}."
            )
        buffer[filled] = frame
        filled += 1
        if filled == shard:
            array[task.serial_index, written : written + filled] = buffer
            written, filled = written + filled, 0
    if filled:
        array[task.serial_index, written : written + filled] = buffer[:filled]
        written += filled
    if written != task.n_frames:
        raise InputDataError(f"The video {task.video} ended after {written} of {task.n_frames} frames.")
    storage.mark_camera_written(task.store, task.group, task.variable, task.serial_index)
