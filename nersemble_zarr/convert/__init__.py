"""Convert fetched benchmark assets into one chunked zarr v3 store (resumable, camera-parallel)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import catalogue, schema, storage
from ..frame_codecs import DEFAULT_FRAME_CODEC, FrameCodec, frame_codec
from ..errors import ConfigError, ConversionError, CorruptVideo, InputDataError, StoreError, write_failure
from ..parallel import run_tasks
from ..progress import Progress, set_total
from .frames import VideoTask, run_video_task
from .layout import Chunking, sequence_skeleton
from .plan import SequenceSource, plan_conversion
from .svfr import SvfrSource, plan_svfr, write_svfr

__all__ = ["Chunking", "ConvertSummary", "convert", "plan_conversion"]


@dataclass
class ConvertSummary:
    """What a convert run did."""

    sequences: list[str] = field(default_factory=list)
    videos_written: int = 0
    videos_skipped: int = 0
    images_written: int = 0  # SVFR images
    images_skipped: int = 0


def convert(
    root: str | os.PathLike,
    store: str | os.PathLike,
    *,
    benchmarks: tuple[str, ...] | None = None,
    participants: tuple[int, ...] | None = None,
    sequences: tuple[str, ...] | None = None,
    codec: str = DEFAULT_FRAME_CODEC,
    chunking: Chunking = Chunking(),
    workers: int = 4,
    client: Any = None,
    progress: Progress | None = None,
) -> ConvertSummary:
    """Convert the fetched benchmark under ``root`` into the zarr v3 store ``store``.

    Every input is validated before anything is written. Cameras are decoded and written in parallel
    (dask threads, or ``client``); a camera is marked converted only after all its frames are written, so
    an interrupted run is resumed by running again. Sequences already in the store are left untouched.
    A failed write (disk full, permissions) raises a ConversionError naming the store. ``progress`` is
    told the number of videos to write (``set_total``) and called as each one is written. One run writes a
    local store at a time (``storage.writer_lock``): another run into it raises LockError. An interrupt
    (Ctrl-C) keeps what is written, flagged as far as it is complete, for the rerun to resume.
    """
    root = Path(root)
    if (root / "zarr.json").is_file():
        raise ConfigError(f"{root} is a zarr store, not a fetched folder; convert reads the folder that "
                          "`nersemble-zarr fetch` wrote (ROOT), and a store needs no converting.")
    frame_codec_ = frame_codec(codec)
    benchmarks = benchmarks or tuple(b for b in catalogue.ALL_BENCHMARKS if (root / b).is_dir())
    if not benchmarks:
        raise ConversionError(f"No fetched benchmark folder (nvs/, mono_flame_avatar/ or svfr/) under {root}.")
    selection = catalogue.split_selection(benchmarks, participants, sequences)
    video_benchmarks = tuple(b for b in selection if b != catalogue.SVFR)
    try:
        plans = [s for b in video_benchmarks for s in plan_conversion(root, b, *selection[b])]
    except CorruptVideo as error:
        raise set_aside(error, root) from error
    svfr_plans = plan_svfr(root, selection[catalogue.SVFR][0]) if catalogue.SVFR in selection else []
    if not plans and not svfr_plans:
        wanted = ", ".join(f"{name} {', '.join(map(str, values))}" for name, values in
                           (("participant", participants), ("sequence", sequences)) if values)
        raise ConversionError(f"Nothing to convert under {root}: no fetched sequence matches {wanted or 'the request'}.")
    store_path = os.fspath(store)
    with storage.writer_lock(store_path):  # before looking at the store: it may be another run's
        new_store = "://" not in store_path and not os.path.lexists(store_path)
        completed = interrupted = False
        try:
            summary = ConvertSummary()
            if plans:
                summary = _write(store_path, plans, video_benchmarks, frame_codec_, chunking, workers, client, progress)
            if svfr_plans:
                _write_svfr(store_path, svfr_plans, frame_codec_, summary)
            completed = True
            return summary
        except KeyboardInterrupt:  # tasks still running may write on: deleting now would race them
            interrupted = True
            raise
        except CorruptVideo as error:
            raise set_aside(error, root) from error
        except OSError as error:  # inputs were read and checked above; what fails now is writing the store
            raise ConversionError(write_failure(f"the store {store_path}", error)) from error
        finally:  # a failed first run leaves no store behind (its groups are gone); an interrupted one is resumed
            if new_store and not completed and not (interrupted and storage.group_exists(store_path, "")):
                shutil.rmtree(store_path, ignore_errors=True)


def set_aside(error: CorruptVideo, root: Path) -> InputDataError:
    """Rename a corrupt fetched video to ``NAME.corrupt`` (kept, never deleted) so that the next ``fetch``
    downloads it again, and return the error that says so with the exact command."""
    video = Path(error.path)
    aside = video.with_name(video.name + ".corrupt")
    for number in range(2, 1000):
        if not os.path.lexists(aside):
            break
        aside = video.with_name(f"{video.name}.corrupt-{number}")
    try:
        relative = video.resolve().relative_to(root.resolve()).parts
        os.replace(video, aside)
    except (OSError, ValueError):  # not under ROOT, or cannot be renamed: say what to do by hand
        return InputDataError(f"{error} Delete it, then fetch it again with `nersemble-zarr fetch`.")
    command = f"nersemble-zarr fetch {root} {relative[0]} -p {int(relative[1])}"
    where = error.detail.split("(")[0].strip()  # "at frame N"; FFmpeg's words stay in the --debug traceback
    return InputDataError(f"The video {video} is corrupt{' ' + where if where else ''}; moved aside to {aside.name}: "
                          f"`{command}` downloads it again, then rerun convert.")


def _write(
    store_path: str,
    plans: list[SequenceSource],
    benchmarks: tuple[str, ...],
    frame_codec_: FrameCodec,
    chunking: Chunking,
    workers: int,
    client: Any,
    progress: Progress | None,
) -> ConvertSummary:
    """Write the planned sequences: skeletons first, then every pending camera; see ``convert``."""
    storage.prepare_store(store_path)
    created: list[str] = []
    tasks: list[VideoTask] = []
    summary = ConvertSummary()
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1))
    try:
        for source in plans:
            group = schema.sequence_group(source.benchmark, source.participant, source.sequence)
            new_ancestor = _first_missing_ancestor(store_path, group)
            if _ensure_skeleton(store_path, group, source, frame_codec_, chunking):
                created.append(new_ancestor)
            pending = _pending_tasks(store_path, group, source, threads)
            summary.videos_skipped += 2 * len(source.video_serials) if source.has_alpha else len(source.video_serials)
            summary.videos_skipped -= len(pending)
            tasks.extend(pending)
            summary.sequences.append(group)
        set_total(progress, len(tasks))
        errors = [e for e in run_tasks(run_video_task, tasks, workers=workers, client=client, progress=progress) if e]
        if errors:
            raise errors[0]
    except Exception:  # not an interrupt: its groups are resumed by the rerun (see ``convert``)
        _remove_groups(store_path, created)
        raise
    summary.videos_written = len(tasks)
    for group in summary.sequences:
        storage.mark_converted(store_path, group)
    storage.record_benchmarks(store_path, benchmarks)
    storage.consolidate(store_path)
    return summary


def _write_svfr(store_path: str, plans: list[SvfrSource], codec: FrameCodec, summary: ConvertSummary) -> None:
    """Write every participant's SVFR group (resuming flagged images), then record and consolidate."""
    storage.prepare_store(store_path)
    for source in plans:
        written, skipped = write_svfr(store_path, source, codec)
        summary.images_written += written
        summary.images_skipped += skipped
        summary.sequences.append(schema.svfr_group(source.participant))
    storage.record_benchmarks(store_path, [catalogue.SVFR])
    storage.consolidate(store_path)


def _ensure_skeleton(store: str, group: str, source: SequenceSource, codec: FrameCodec, chunking: Chunking) -> bool:
    """Write the sequence's metadata and coordinates unless present; True when created now.

    A group a killed run left half-written (without the skeleton marker) is removed and written again: no frame
    of it can have been written, since frames are written only after every skeleton of a run is complete.
    """
    if storage.group_exists(store, group):
        existing = storage.open_group(store, group)
        if not storage.is_skeleton_complete(existing):
            _remove_groups(store, [group])
            return _ensure_skeleton(store, group, source, codec, chunking)
        found = existing.attrs.get(schema.FRAME_CODEC_ATTR)
        if found != codec.name:
            raise StoreError(
                f"The store already holds {group} with codec {found!r}, not {codec.name!r}; "
                "convert into a new store to change the codec."
            )
        if existing.get(schema.TIMESTEP) is None or existing[schema.TIMESTEP].shape[0] != len(source.timesteps):
            raise StoreError(f"The store's {group} does not match the fetched data's frame count; use a new store.")
        return False
    dataset, encoding = sequence_skeleton(source, codec, chunking)
    storage.write_skeleton(dataset, store, group, encoding)
    storage.mark_skeleton_complete(store, group)
    return True


def _pending_tasks(store: str, group: str, source: SequenceSource, threads: int) -> list[VideoTask]:
    tasks: list[VideoTask] = []
    if not source.video_serials:
        return tasks
    kinds = [(schema.IMAGES, "images")] + ([(schema.ALPHA, "alpha_maps")] if source.has_alpha else [])
    for variable, kind in kinds:
        done = storage.camera_flag(store, group, variable)
        for serial in source.video_serials:
            index = source.cameras.serials.index(serial)
            if not done[index]:
                tasks.append(
                    VideoTask(store, group, variable, index, source.video_file(serial, kind), len(source.timesteps), threads)
                )
    return tasks


def _first_missing_ancestor(store: str, group: str) -> str:
    """The outermost group on the way to ``group`` that does not exist yet (``group`` itself at worst)."""
    parts = group.split("/")
    for depth in range(1, len(parts) + 1):
        path = "/".join(parts[:depth])
        if not storage.group_exists(store, path):
            return path
    return group


def _remove_groups(store: str, groups: list[str]) -> None:
    """Delete the groups this run created, so a failed run leaves the store as it was."""
    for group in reversed(groups):
        storage.remove_group(store, group)
