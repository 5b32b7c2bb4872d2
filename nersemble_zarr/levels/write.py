"""Compute the resolution levels of one camera, frame by frame, each level from level 1 or from a level above it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import schema, storage
from .resample import block_mean, downsample_frames


@dataclass(frozen=True)
class CameraLevelsTask:
    """Write levels of camera ``serial_index`` of a sequence: its frames for ``steps``, (level, parent level) pairs
    in computing order, each parent being 1, a level computed earlier in ``steps``, or one complete in the store;
    its background picture (a dataset sequence's) for ``background_levels``, each averaged from level 1."""

    store: str
    benchmark: str
    participant: int
    sequence: str
    serial_index: int
    steps: tuple[tuple[int, int], ...]
    has_alpha: bool
    background_levels: tuple[int, ...] = ()

    def group(self, level: int) -> str:
        return schema.level_group(level, self.benchmark, self.participant, self.sequence)


def parent_level(level: int, available: set[int]) -> int:
    """The coarsest available level that ``level`` is an integer multiple of (1 at worst)."""
    return max(candidate for candidate in available | {1} if candidate < level and level % candidate == 0)


def plan_steps(pending: list[int], complete: set[int], *, chained: bool = True) -> tuple[tuple[int, int], ...]:
    """(level, parent) for each pending level, ascending, parents taken from complete or earlier pending levels;
    with ``chained`` False every parent is level 1 (frames without alpha: then a level's pixels are the rounded
    mean of level-1 pixels, exactly what ``convert --level`` stores, not a mean of rounded means)."""
    steps, available = [], set(complete) if chained else set()
    for level in sorted(pending):
        steps.append((level, parent_level(level, available)))
        if chained:
            available.add(level)
    return tuple(steps)


def write_camera_levels(task: CameraLevelsTask) -> None:
    """Write the camera's frames and background picture at their levels; flag each variable of each level
    complete only after all of it is written."""
    if task.steps:
        _write_frames(task)
    if task.background_levels:
        _write_background(task)
    variables = [schema.IMAGES] + ([schema.ALPHA] if task.has_alpha else [])
    for level, _ in task.steps:
        for name in variables:
            storage.mark_camera_written(task.store, task.group(level), name, task.serial_index)
    for level in task.background_levels:
        storage.mark_camera_written(task.store, task.group(level), schema.BACKGROUND, task.serial_index)


def _write_frames(task: CameraLevelsTask) -> None:
    """Stream the camera's frames through every step, one frame at a time, and write each level a whole shard
    at a time (no read-modify-write of shards)."""
    variables = [schema.IMAGES] + ([schema.ALPHA] if task.has_alpha else [])
    targets = {level for level, _ in task.steps}
    levels = targets | {parent for _, parent in task.steps}
    arrays = {
        (level, name): storage.open_array(
            task.store, f"{task.group(level)}/{name}", mode="r+" if level in targets else "r"
        ).with_config({"write_empty_chunks": True})  # skip zarr's "is it empty?" scan; whole shards are written
        for level in levels for name in variables
    }
    first = arrays[(task.steps[0][0], schema.IMAGES)]
    n_timesteps = first.shape[1]
    shard = (first.shards or first.chunks)[1]
    for start in range(0, n_timesteps, shard):
        stop = min(start + shard, n_timesteps)
        shards = {
            (level, name): np.empty((stop - start,) + arrays[(level, name)].shape[2:], dtype=np.uint8)
            for level in targets for name in variables
        }
        for position in range(start, stop):
            frames: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
            for level, parent in task.steps:
                if parent not in frames:
                    frames[parent] = _read_frame(arrays, parent, task, position)
                frames[level] = downsample_frames(*frames[parent], level // parent)
                for name, values in zip(variables, frames[level]):
                    shards[(level, name)][position - start] = values[0]
        for (level, name), values in shards.items():
            arrays[(level, name)][task.serial_index, start:stop] = values


def _write_background(task: CameraLevelsTask) -> None:
    """Area-average the camera's level-1 background picture to each level (the frames' rule, ``block_mean``) and
    write it, one whole chunk per level."""
    picture = storage.open_array(task.store, f"{task.group(1)}/{schema.BACKGROUND}")[task.serial_index]
    for level in task.background_levels:
        target = storage.open_array(task.store, f"{task.group(level)}/{schema.BACKGROUND}", mode="r+")
        target = target.with_config({"write_empty_chunks": True})  # one whole chunk, flagged only afterwards
        target[task.serial_index] = block_mean(picture[None], level)[0]


def _read_frame(arrays: dict, level: int, task: CameraLevelsTask, position: int) -> tuple:
    """One frame of a level as (images (1, H, W, 3), alpha (1, H, W) or None)."""
    images = arrays[(level, schema.IMAGES)][task.serial_index, position : position + 1]
    alpha = arrays[(level, schema.ALPHA)][task.serial_index, position : position + 1] if task.has_alpha else None
    return images, alpha
