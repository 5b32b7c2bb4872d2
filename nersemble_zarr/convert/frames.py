"""Decode one camera's video and write its frames into the store, shard by shard (one dask task).

A task may also bring each decoded frame to a resolution level and colour-correct it on the way (the NeRSemble v2
dataset: ``colour.correct_colour_at_level``, area-average first, then correct), and a dataset's BACKGROUND picture
is one more task of the same kind, one frame without a time axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import schema, storage
from ..colour import correct_colour_at_level
from ..errors import InputDataError
from ..levels.resample import block_mean
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
    level: int = 1  # each frame is area-averaged over level x level boxes before it is stored
    colour_matrix: np.ndarray | None = None  # the camera's 3 x terms matrix, to correct each frame (after the level)

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
    if task.variable == schema.BACKGROUND:
        write_picture(task)
        return
    array = storage.open_array(task.store, f"{task.group}/{task.variable}", mode="r+")
    frame_shape = tuple(array.shape[2:])
    gray = task.variable == schema.ALPHA
    decoded = 0
    level_buffer = None  # at a level, every frame is averaged into the first one's array (the sink copies it)
    with frame_sink(array, (task.serial_index,)) as sink:
        for frame in iter_frames(task.video, gray=gray, threads=task.decode_threads):
            if decoded >= task.n_frames:
                raise InputDataError(f"The video {task.video} has more frames than the {task.n_frames} expected.")
            stored = prepared(frame, task, level_buffer)
            level_buffer = stored if task.level > 1 else None
            if stored.shape != frame_shape:
                expected = (frame_shape if task.level == 1
                            else f"one that averages to {frame_shape} at level {task.level}")
                raise InputDataError(f"The video {task.video} has a frame of shape {frame.shape}; expected {expected}.")
            sink.add(stored)
            decoded += 1
        written = sink.close()
    if written != task.n_frames:
        raise InputDataError(f"The video {task.video} ended after {written} of {task.n_frames} frames.")
    storage.mark_camera_written(task.store, task.group, task.variable, task.serial_index)


def prepared(frame: np.ndarray, task: VideoTask, out: np.ndarray | None = None) -> np.ndarray:
    """A decoded frame as it is stored: at the task's level (written into ``out`` when given: a video's frames
    share one buffer, so each frame allocates nothing), colour-corrected when it has a matrix."""
    if task.colour_matrix is not None:
        return correct_colour_at_level(frame, task.colour_matrix, task.level, out=out)
    return block_mean(frame[None], task.level, None if out is None else out[None])[0] if task.level > 1 else frame


def write_picture(task: VideoTask) -> None:
    """Decode one picture (a BACKGROUND JPEG), bring it to the task's level and correction, write it into
    ``variable[serial_index]`` and flag the camera."""
    from PIL import Image, UnidentifiedImageError

    array = storage.open_array(task.store, f"{task.group}/{task.variable}", mode="r+")
    try:
        with Image.open(task.video) as picture:
            frame = np.asarray(picture.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise InputDataError(f"The picture {task.video} cannot be decoded ({error}); fetch it again.") from None
    stored = prepared(frame, task)
    if stored.shape != tuple(array.shape[1:]):
        raise InputDataError(f"The picture {task.video} is {frame.shape[1]}x{frame.shape[0]}, not the size of the "
                             "sequence's videos; fetch it again.")
    array[task.serial_index] = stored
    storage.mark_camera_written(task.store, task.group, task.variable, task.serial_index)
