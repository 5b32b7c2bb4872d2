"""Resolution levels: downsampled images, alpha and background pictures of every sequence, with exactly rescaled
intrinsics.

Level s of sequence ``nvs/388/GLASSES`` is the Dataset at ``level_s/nvs/388/GLASSES`` (a tree mirroring the
full-resolution one; ``xr.open_datatree`` opens it like any other group). Frames are area averages of s x s
pixels (see ``resample``), one camera per task, frame by frame (each level written a whole shard at a time), so
no video is ever held in memory. Frames with alpha (the benchmarks) compute each level from the coarsest level
it is a multiple of (level 4 from level 2); frames without alpha and background pictures (the v2 dataset) every
level from level 1, so that they equal what ``convert -b dataset --level s`` stores. A camera's variable is
flagged complete at a level only after all of it is written; running again resumes.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import xarray as xr

from .. import schema, storage
from ..errors import ConfigError, StoreError, shown
from ..parallel import run_tasks
from ..progress import Progress, set_total
from .layout import FULL_RESOLUTION_GROUP_ATTR, level_skeleton
from .resample import downsample_frames, level_size, scale_intrinsics
from .write import CameraLevelsTask, plan_steps, write_camera_levels

__all__ = [
    "DownsampleSummary",
    "check_levels",
    "downsample",
    "downsample_frames",
    "level_size",
    "scale_intrinsics",
]


@dataclass
class DownsampleSummary:
    """What a downsample run did: sequences touched, camera tasks run, cameras already done or not converted."""

    sequences: list[str] = field(default_factory=list)
    cameras_written: int = 0
    cameras_skipped: int = 0
    cameras_not_converted: list[str] = field(default_factory=list)


def check_levels(levels: Iterable[int]) -> tuple[int, ...]:
    """Requested levels as a sorted tuple of distinct integers >= 2, or a ConfigError naming the bad one."""
    checked = set()
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, numbers.Integral) or level < 2:
            raise ConfigError(f"Resolution level {shown(level)} is invalid; expected integers of at least 2 (e.g. 2,4).")
        checked.add(int(level))
    if not checked:
        raise ConfigError("No resolution level given; pass at least one, e.g. --levels 2,4.")
    return tuple(sorted(checked))


def downsample(
    store: str | os.PathLike,
    levels: Iterable[int],
    *,
    participants: Iterable[int] | None = None,
    sequences: Iterable[str] | None = None,
    workers: int = 4,
    client: Any = None,
    progress: Progress | None = None,
) -> DownsampleSummary:
    """Write resolution ``levels`` of the store's sequences (all, or those of ``participants``/``sequences``).

    A dataset sequence's background pictures, colour matrices and calibration texts are carried to its levels.
    Sequences without video (mono test sequences) get level groups with cameras and tracking only; cameras
    not yet converted are left for a later run and listed in the summary. Consolidated metadata is
    rewritten at the end. ``progress`` is told the number of cameras (``set_total``) and called as each is done.
    The run holds the store's writer lock (``storage.writer_lock``): while another run writes it, LockError.
    """
    path = os.fspath(store)
    levels = check_levels(levels)
    storage.read_root_attrs(path)
    with storage.writer_lock(path):
        return _downsample(path, levels, participants, sequences, workers, client, progress)


def _downsample(path: str, levels: tuple[int, ...], participants: Iterable[int] | None,
                sequences: Iterable[str] | None, workers: int, client: Any, progress: Progress | None
                ) -> DownsampleSummary:
    keys = _select(path, participants, sequences)
    summary = DownsampleSummary()
    tasks: list[CameraLevelsTask] = []
    sources = {key: storage.open_dataset(path, schema.sequence_group(*key)) for key in keys}
    for key, source in sources.items():
        _check_sequence(path, key, source, levels)
    for key, source in sources.items():
        summary.sequences.append(schema.sequence_group(*key))
        tasks.extend(_plan_sequence(path, key, source, levels, summary))
    set_total(progress, len(tasks))
    run_tasks(write_camera_levels, tasks, workers=workers, client=client, progress=progress)
    summary.cameras_written = len(tasks)
    storage.consolidate(path)
    return summary


def _select(store: str, participants: Iterable[int] | None, sequences: Iterable[str] | None) -> list[tuple]:
    participants = None if participants is None else {int(p) for p in participants}
    sequences = None if sequences is None else set(sequences)
    keys = storage.select_sequences(store, participants=participants, sequences=sequences)
    if not keys:
        raise StoreError(
            f"The store {store} has no sequence for participant(s) {sorted(participants or []) or 'any'} and "
            f"sequence(s) {sorted(sequences or []) or 'any'}; check the names with `nersemble-zarr info`."
        )
    return keys


def _check_sequence(store: str, key: tuple, source: xr.Dataset, levels: tuple[int, ...]) -> None:
    """Refuse, before anything is written, levels that leave less than one pixel, and levels whose group (a dataset
    sequence converted straight to that level) holds frames colour-corrected where the sequence's are not, or the
    other way round: a group never mixes the two."""
    height, width = source.attrs[schema.HEIGHT_ATTR], source.attrs[schema.WIDTH_ATTR]
    corrected = bool(source.attrs.get(schema.COLOUR_CORRECTED_ATTR, False))
    for level in levels:
        if min(level_size(height, width, level)) < 1:
            raise ConfigError(
                f"Resolution level {level} is too coarse for {schema.sequence_group(*key)} ({width}x{height} pixels)."
            )
        group = schema.level_group(level, *key)
        if storage.group_exists(store, group) and bool(
                storage.open_group(store, group).attrs.get(schema.COLOUR_CORRECTED_ATTR, False)) != corrected:
            raise StoreError(
                f"The store's {group} holds {_correction(not corrected)} frames and {schema.sequence_group(*key)} "
                f"{_correction(corrected)} ones, which one group never mixes; leave level {level} out of --levels or "
                "downsample into another store."
            )


def _correction(corrected: bool) -> str:
    return "colour-corrected" if corrected else "uncorrected"


def _plan_sequence(
    store: str, key: tuple, source: xr.Dataset, levels: tuple[int, ...], summary: DownsampleSummary
) -> list[CameraLevelsTask]:
    """Create or check the sequence's level groups and return one task per camera with levels to write."""
    for level in levels:
        _ensure_level_group(store, key, source, level)
    if schema.IMAGES not in source:
        return []
    has_alpha = schema.ALPHA in source
    has_background = schema.BACKGROUND in source
    group = schema.sequence_group(*key)
    source_done = storage.camera_flags(store, group, has_alpha)
    existing = storage.existing_levels(store, *key)
    done = {level: storage.camera_flags(store, schema.level_group(level, *key), has_alpha) for level in existing}
    if has_background:  # a camera whose picture was not fetched has none at any level
        source_background = storage.camera_flag(store, group, schema.BACKGROUND)
        background_done = {level: storage.camera_flag(store, schema.level_group(level, *key), schema.BACKGROUND)
                           for level in levels}
    serials = [str(serial) for serial in source[schema.SERIAL].values]
    tasks = []
    for serial in source.attrs.get(schema.VIDEO_SERIALS_ATTR, []):
        index = serials.index(serial)
        if not source_done[index]:
            summary.cameras_not_converted.append(f"{group}/{serial}")
            continue
        pending = [level for level in levels if not done[level][index]]
        background = tuple(level for level in levels if has_background and source_background[index]
                           and not background_done[level][index])
        if not pending and not background:
            summary.cameras_skipped += 1
            continue
        complete = {level for level, flags in done.items() if flags[index]}
        steps = plan_steps(pending, complete, chained=has_alpha)
        tasks.append(CameraLevelsTask(store, *key, index, steps, has_alpha, background))
    return tasks


def _ensure_level_group(store: str, key: tuple, source: xr.Dataset, level: int) -> None:
    """Write the level's skeleton unless present; an existing one must match the sequence it mirrors."""
    group = schema.level_group(level, *key)
    if storage.group_exists(store, group):
        existing = storage.open_dataset(store, group)
        expected = level_size(source.attrs[schema.HEIGHT_ATTR], source.attrs[schema.WIDTH_ATTR], level)
        found = (existing.attrs.get(schema.HEIGHT_ATTR), existing.attrs.get(schema.WIDTH_ATTR))
        if found != expected or existing.sizes.get(schema.TIMESTEP) != source.sizes[schema.TIMESTEP]:
            raise StoreError(
                f"The store's {group} ({found[1]}x{found[0]}) does not match {schema.sequence_group(*key)} "
                f"downsampled by {level}; delete that group and run downsample again."
            )
        if existing.attrs.get(FULL_RESOLUTION_GROUP_ATTR):  # ours: add what an older downsample left out
            _add_missing_variables(store, group, source, existing, level)
        return
    dataset, encoding = level_skeleton(source, level)
    storage.write_skeleton(dataset, store, group, encoding)


def _add_missing_variables(store: str, group: str, source: xr.Dataset, existing: xr.Dataset, level: int) -> None:
    """Add to a level group the pixel variables (and their flags, all False) that its source has and it lacks,
    e.g. the background pictures of a dataset sequence downsampled before levels carried them."""
    dataset, encoding = level_skeleton(source, level)
    missing = [name for name in dataset.data_vars if name not in existing]
    if not missing:
        return
    flags = [schema.converted_flag(name) for name in missing]
    added = dataset[missing + flags]
    added = added.drop_vars([name for name in added.coords if name not in flags])
    storage.add_variables(added, store, group, {name: encoding[name] for name in missing + flags})
