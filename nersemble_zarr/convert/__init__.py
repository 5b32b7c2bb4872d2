"""Convert fetched benchmark and dataset assets into one chunked zarr v3 store (resumable, camera-parallel).

Each video source has its planner (``PLANNERS``, keyed by the source's name) that lists and checks its sequences
as ``SequenceSource``s; from there every source is written the same way: a skeleton per sequence group, then one
task per camera.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import allocator, catalogue, schema, storage
from ..frame_codecs import DEFAULT_FRAME_CODEC, FrameCodec, frame_codec
from ..levels.layout import FULL_RESOLUTION_GROUP_ATTR
from ..errors import ConfigError, ConversionError, CorruptVideo, InputDataError, StoreError, write_failure
from ..parallel import run_tasks
from ..progress import Progress, set_total
from ..sources import get_source
from ..store_metadata import SOURCE_NAMES
from .dataset import check_level, plan_dataset
from .frames import VideoTask, run_video_task
from .layout import Chunking, sequence_skeleton
from .plan import SequenceSource, plan_conversion
from .svfr import SvfrSource, plan_svfr, write_svfr

__all__ = ["Chunking", "ConvertSummary", "DatasetOptions", "PLANNERS", "convert", "plan_conversion", "plan_dataset"]


@dataclass(frozen=True)
class DatasetOptions:
    """How the dataset's frames are converted: cameras (None = all fetched), resolution level, colour correction."""

    cameras: tuple[str, ...] | None = None
    level: int = 1
    colour_correct: bool = False

    @property
    def is_default(self) -> bool:
        return self == DatasetOptions()


Planner = Callable[[Path, "tuple[int, ...] | None", "tuple[str, ...] | None", DatasetOptions], list[SequenceSource]]
PLANNERS: dict[str, Planner] = {
    "nvs": lambda root, participants, sequences, _: plan_conversion(root, "nvs", participants, sequences),
    "mono_flame_avatar": lambda root, participants, sequences, _: plan_conversion(
        root, "mono_flame_avatar", participants, sequences),
    schema.DATASET: lambda root, participants, sequences, options: plan_dataset(
        root, participants, sequences, options.cameras, level=options.level, colour_correct=options.colour_correct),
}


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
    dataset: DatasetOptions = DatasetOptions(),
    map_large_blocks: bool = False,
) -> ConvertSummary:
    """Convert the fetched benchmark (and dataset) under ``root`` into the zarr v3 store ``store``.

    ``benchmarks`` names the sources (``nvs``, ``mono_flame_avatar``, ``svfr``, ``dataset``; default: every one
    fetched under ``root``). ``dataset`` says how the dataset's frames are stored (``DatasetOptions``: cameras,
    resolution level, colour correction); a level s > 1 is written at ``level_{s}/dataset/...`` straight from the
    decoded frames. A group already holding the other colour correction setting is refused.

    Every input is validated before anything is written. Cameras are decoded and written in parallel
    (dask threads, or ``client``); a camera is marked converted only after all its frames are written, so
    an interrupted run is resumed by running again. Sequences already in the store are left untouched.
    A failed write (disk full, permissions) raises a ConversionError naming the store. ``progress`` is
    told the number of videos to write (``set_total``) and called as each one is written. One run writes a
    local store at a time (``storage.writer_lock``): another run into it raises LockError. An interrupt
    (Ctrl-C) keeps what is written, flagged as far as it is complete, for the rerun to resume.

    ``map_large_blocks`` (the CLI's choice when it decodes in its own process): without ``client``, fix glibc's
    mmap threshold above the largest chunk written for the rest of the process (``allocator.map_large_blocks``),
    so that each video's decoder pictures are returned whole and the peak memory stays flat over many sequences.
    """
    root = Path(root)
    if (root / "zarr.json").is_file():
        raise ConfigError(f"{root} is a zarr store, not a fetched folder; convert reads the folder that "
                          "`nersemble-zarr fetch` wrote (ROOT), and a store needs no converting.")
    frame_codec_ = frame_codec(codec)
    check_level(dataset.level)
    benchmarks = benchmarks or tuple(b for b in SOURCE_NAMES if (root / b).is_dir())
    if not benchmarks:
        raise ConversionError(f"No fetched benchmark or dataset folder (nvs/, mono_flame_avatar/, svfr/ or dataset/) "
                              f"under {root}.")
    selection = _split_selection(benchmarks, participants, sequences, dataset)
    video_benchmarks = tuple(b for b in selection if b != catalogue.SVFR)
    try:
        plans = [s for b in video_benchmarks for s in PLANNERS[b](root, *selection[b], dataset)]
    except CorruptVideo as error:
        raise set_aside(error, root) from error
    svfr_plans = plan_svfr(root, selection[catalogue.SVFR][0]) if catalogue.SVFR in selection else []
    if not plans and not svfr_plans:
        wanted = ", ".join(f"{name} {', '.join(map(str, values))}" for name, values in
                           (("participant", participants), ("sequence", sequences)) if values)
        raise ConversionError(f"Nothing to convert under {root}: no fetched sequence matches {wanted or 'the request'}.")
    if map_large_blocks and client is None and plans:
        allocator.map_large_blocks(max(chunking.frames_per_chunk * s.height * s.width * 3 for s in plans))
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


def _split_selection(benchmarks: tuple[str, ...], participants: tuple[int, ...] | None,
                     sequences: tuple[str, ...] | None, dataset: DatasetOptions) -> dict:
    """source -> (participants, sequences) to convert: the benchmarks' filters split by the catalogue, the dataset's
    passed on whole (its index, read by its planner, checks them)."""
    for name in benchmarks:
        get_source(name)  # an unknown name: one sentence naming it and the choices
    others = tuple(b for b in benchmarks if b != schema.DATASET)
    if schema.DATASET not in benchmarks:
        if not dataset.is_default:
            raise ConfigError("--cameras, --level and --colour-correct apply to the dataset only (-b dataset); "
                              "write the benchmarks' levels with `nersemble-zarr downsample`.")
        return catalogue.split_selection(others, participants, sequences)
    if others and not dataset.is_default or others and (participants or sequences):
        raise ConfigError("Convert the dataset in a run of its own (-b dataset) when choosing participants, "
                          "sequences, cameras, a level or colour correction.")
    selection = catalogue.split_selection(others, None, None) if others else {}
    return {**selection, schema.DATASET: (participants, sequences)}


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
            group = schema.level_group(source.level, source.benchmark, source.participant, source.sequence)
            new_ancestor = _first_missing_ancestor(store_path, group)
            if _ensure_skeleton(store_path, group, source, frame_codec_, chunking):
                created.append(new_ancestor)
            pending = _pending_tasks(store_path, group, source, threads)
            summary.videos_skipped += 2 * len(source.video_serials) if source.has_alpha else len(source.video_serials)
            summary.videos_skipped -= sum(task.variable != schema.BACKGROUND for task in pending)
            tasks.extend(pending)
            summary.sequences.append(group)
        set_total(progress, len(tasks))
        errors = [e for e in run_tasks(run_video_task, tasks, workers=workers, client=client, progress=progress) if e]
        if errors:
            raise errors[0]
    except Exception:  # not an interrupt: its groups are resumed by the rerun (see ``convert``)
        _remove_groups(store_path, created)
        raise
    summary.videos_written = sum(task.variable != schema.BACKGROUND for task in tasks)
    for group in summary.sequences:
        if _all_cameras_written(store_path, group):
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
        if FULL_RESOLUTION_GROUP_ATTR in existing.attrs:  # downsample's level: complete without a marker of its own
            raise StoreError(f"The store's {group} was written by `downsample` from "
                             f"{existing.attrs[FULL_RESOLUTION_GROUP_ATTR]}; it is left as it is: convert at another "
                             "level, or into another store.")
        if not storage.is_skeleton_complete(existing):
            _remove_groups(store, [group])
            return _ensure_skeleton(store, group, source, codec, chunking)
        found = existing.attrs.get(schema.FRAME_CODEC_ATTR)
        if source.dataset is not None:
            _check_dataset_group(store, group, existing, source)
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


def _check_dataset_group(store: str, group: str, existing, source: SequenceSource) -> None:
    """Refuse to mix corrected and uncorrected frames in one group; add this run's cameras to its video_serials."""
    corrected = bool(existing.attrs.get(schema.COLOUR_CORRECTED_ATTR, False))
    if corrected != source.dataset.colour_correct:
        held, asked = ("colour-corrected", "uncorrected") if corrected else ("uncorrected", "colour-corrected")
        raise StoreError(f"The store's {group} holds {held} frames and this run would add {asked} ones; convert "
                         f"{'with' if corrected else 'without'} --colour-correct, or into another store.")
    known = list(existing.attrs.get(schema.VIDEO_SERIALS_ATTR, []))
    added = [serial for serial in source.video_serials if serial not in known]
    if added:
        order = list(source.cameras.serials)
        existing.attrs[schema.VIDEO_SERIALS_ATTR] = sorted(known + added, key=order.index)


def _pending_tasks(store: str, group: str, source: SequenceSource, threads: int) -> list[VideoTask]:
    tasks: list[VideoTask] = []
    if not source.video_serials:
        return tasks
    inputs = source.dataset
    kinds = [(schema.IMAGES, "images")] + ([(schema.ALPHA, "alpha_maps")] if source.has_alpha else [])
    for variable, kind in kinds:
        done = storage.camera_flag(store, group, variable)
        for serial in source.video_serials:
            index = source.cameras.serials.index(serial)
            if not done[index]:
                tasks.append(VideoTask(
                    store, group, variable, index, source.video_file(serial, kind), len(source.timesteps), threads,
                    source.level, None if inputs is None else inputs.colour_matrix(serial),
                ))
    if inputs is not None and inputs.backgrounds and storage.array_exists(store, f"{group}/{schema.BACKGROUND}"):
        done = storage.camera_flag(store, group, schema.BACKGROUND)
        for serial, picture in inputs.backgrounds.items():
            index = source.cameras.serials.index(serial)
            if not done[index]:
                tasks.append(VideoTask(store, group, schema.BACKGROUND, index, picture, 1, threads, source.level,
                                       inputs.colour_matrix(serial)))
    return tasks


def _all_cameras_written(store: str, group: str) -> bool:
    """Every camera with video has its frames (and, where the group has them, alpha) written."""
    node = storage.open_group(store, group)
    serials = [str(serial) for serial in node[schema.SERIAL][:]]
    wanted = [serials.index(serial) for serial in node.attrs.get(schema.VIDEO_SERIALS_ATTR, [])]
    for variable in (schema.IMAGES, schema.ALPHA):
        if variable in node and not storage.camera_flag(store, group, variable)[wanted].all():
            return False
    return True


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
