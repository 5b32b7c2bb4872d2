"""Decode one camera's video and write its frames into the store, shard by shard (one dask task)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import schema, storage
from ..errors import InputDataError
from ..shard_writer import frame_sink
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
    array = storage.open_array(task.store, f"{task.group}/{task.variable}", mode="r+")
    frame_shape = tuple(array.shape[2:])
    sink = frame_sink(array, (task.serial_index,))
    gray = task.variable == schema.ALPHA
    decoded = 0
    for frame in iter_frames(task.video, gray=gray, threads=task.decode_threads):
        if decoded >= task.n_frames:
            raise InputDataError(f"The video {task.video} has more frames than the {task.n_frames} expected.")
        if frame.shape != frame_shape:
            raise InputDataError(f"The video {task.video} has a frame of shape {frame.shape}; expected {frame_shape}.")
        sink.add(frame)
        decoded += 1
    written = sink.close()
    if written != task.n_frames:
        raise InputDataError(f"The video {task.video} ended after {written} of {task.n_frames} frames.")
    storage.mark_camera_written(task.store, task.group, task.variable, task.serial_index)
