"""Export a sequence of the store as the image folders and transforms*.json that avatar codebases read.

Two layouts: ``vhap`` (the default), VHAP's NeRF-dataset layout that GaussianAvatars trains on, with FLAME
converted into its convention (:mod:`.vhap`), and ``nerfstudio``, nerfstudio's ``transforms.json``
(:mod:`.nerfstudio`). ``nerf``, the name of this project's first layout, is a deprecated alias of ``vhap``.
A third layout, ``vhap-v2`` (:func:`export_vhap_v2`, :mod:`.vhap_v2`), is VHAP's input for tracking a NeRSemble v2
dataset sequence, what its ``preprocess_video.py`` would extract.
A validation split moves its held-out frames out of the training files (see :func:`export_frames`). Frames are
written in parallel (one task per camera and shard of frames), each file atomically; a rerun skips files
already there, and the transforms files are written last.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, schema, storage
from ..atomic import remove_partial_files, write_atomic
from ..chunk_reader import frame_reader
from ..errors import ConfigError
from ..inputs.jsontext import read_json_file
from ..inputs.origin import Origin
from ..outputs import check_output_folder
from ..parallel import run_tasks
from ..progress import Progress, set_total
from .pixels import BACKGROUNDS, composite, write_png
from .plan import ExportPlan, Frame, check_validation_frames, frame_folders, pending_frames, plan_export
from . import nerfstudio, vhap
from .centring import centred_plan, principal_point_residual, principal_point_shifts, shift_picture
from .vhap_v2 import export_vhap_v2

__all__ = ["BACKGROUNDS", "FORMATS", "ExportSummary", "export_frames", "export_vhap_v2", "plan_export",
           "resolve_format"]

FORMATS = ("vhap", "nerfstudio")
FORMAT_ALIASES = {"nerf": "vhap"}  # deprecated names -> the format they write
SETTINGS_FILE = "nersemble_export.json"


@dataclass
class ExportSummary:
    """What an export run did."""

    group: str
    frames_written: int = 0
    frames_skipped: int = 0
    flame_files_written: int = 0
    transforms: dict[str, int] = field(default_factory=dict)
    principal_point_residual: float | None = None  # pixels, with centre_principal_point


@dataclass(frozen=True)
class FramesTask:
    """Write the image (and mask) files of some frames of one camera, all within one shard of the store."""

    store: str
    group: str
    out: Path
    frames: tuple[Frame, ...]
    background: str
    has_alpha: bool
    shift: tuple[int, int] = (0, 0)  # whole pixels the frames move by (centre_principal_point)


def export_frames(
    store: str | os.PathLike,
    out: str | os.PathLike,
    *,
    format: str = "vhap",
    participant: int | None = None,
    sequence: str | None = None,
    level: int = 1,
    stride: int = 1,
    serials: tuple[str, ...] | None = None,
    background: str = "black",
    validation: Any = None,
    workers: int = 4,
    flame_dir: str | os.PathLike | None = None,
    centre_principal_point: bool = False,
    render_target: bool = False,
    client: Any = None,
    progress: Progress | None = None,
) -> ExportSummary:
    """Export one sequence of ``store`` at resolution ``level`` into the folder ``out`` (resumable).

    ``stride`` keeps every n-th stored frame (original frame indices are kept); ``serials`` limits the
    cameras; ``background`` is 'black', 'white' or 'none' (RGBA). ``format`` 'vhap' writes VHAP's NeRF-dataset
    layout with FLAME converted into its convention (a sequence with tracking needs the FLAME model in
    ``flame_dir``), 'nerfstudio' nerfstudio's transforms.json; 'nerf' is a deprecated alias of 'vhap' (with a
    FutureWarning). A ``validation`` split (a ValidationSplit, or a JSON file or store holding one) takes its
    held-out frames out of training: vhap lists them in transforms_val.json and transforms_test.json instead of
    VHAP's own split, nerfstudio names them in ``val_filenames`` and ``test_filenames``.
    ``centre_principal_point`` crops and pads each camera's frames by whole pixels so its principal point sits
    within half a pixel of the image centre, where GaussianAvatars assumes it (see :mod:`.centring`).
    ``render_target`` (vhap) exports the views without images instead (the benchmark's hold-out views), for
    GaussianAvatars' ``render.py --target_path``. ``progress`` is told the number of tasks (chunks of frames,
    ``set_total``) and called as each finishes.
    """
    format, note = resolve_format(format)
    if note is not None:
        warnings.warn(note, FutureWarning, stacklevel=2)
    if render_target and validation is not None:
        raise ConfigError("A validation split does not apply to a render target, whose views have no images; "
                          "leave out --split.")
    if render_target and format != "vhap":
        raise ConfigError("A render target is written in VHAP's layout only; use --format vhap (the default).")
    store, out = os.fspath(store), Path(out)
    plan = plan_export(
        store, participant=participant, sequence=sequence, level=level, stride=stride, serials=serials,
        background=background, validation=validation,
    )
    shifts = np.zeros((len(plan.dataset[schema.SERIAL]), 2), dtype=np.int64)
    if centre_principal_point:
        shifts = principal_point_shifts(plan)
        plan = centred_plan(plan, shifts)
    flame = None
    if format == "vhap":
        plan = vhap.vhap_plan(plan, render_target)
        flame = vhap.converted_flame(plan, flame_dir)
    elif format == "nerfstudio":
        plan = nerfstudio.nerfstudio_plan(plan)
    if plan.validation:
        check_validation_frames(plan)
    _claim_folder(out, plan, format, {"centre_principal_point": centre_principal_point, "render_target": render_target},
                  shifts)
    summary = ExportSummary(plan.group)
    if centre_principal_point:
        summary.principal_point_residual = principal_point_residual(plan)
    if format == "vhap":
        summary.flame_files_written = vhap.write_flame_files(out, plan, flame)
        vhap.write_placeholders(out, plan)
    pending = pending_frames(out, plan)
    summary.frames_skipped = sum(frame.has_image for frame in plan.frames) - len(pending)
    tasks = _tasks(store, out, plan, pending, shifts)
    set_total(progress, len(tasks))
    summary.frames_written = sum(run_tasks(write_frames, tasks, workers=workers, client=client, progress=progress))
    for folder in frame_folders(out, plan):
        remove_partial_files(folder)
    if format == "vhap":
        summary.transforms = vhap.write_transforms(out, plan, flame, render_target)
    else:
        summary.transforms = nerfstudio.write_transforms(out, plan)
    return summary


def resolve_format(format: str) -> tuple[str, str | None]:
    """The format that the name ``format`` writes, and for a deprecated alias the note saying so (else None)."""
    if format in FORMAT_ALIASES:
        replacement = FORMAT_ALIASES[format]
        return replacement, (f"--format {format} is deprecated and writes --format {replacement} (VHAP's layout, "
                             f"which GaussianAvatars reads); the old {format} layout is no longer written.")
    if format not in FORMATS:
        extra = " (vhap-v2 is written by export_vhap_v2)" if format == "vhap-v2" else ""
        raise ConfigError(f"Export format {format!r} is invalid; expected one of {', '.join(FORMATS)}{extra}.")
    return format, None


def _claim_folder(out: Path, plan: ExportPlan, format: str, options: dict[str, bool], shifts: np.ndarray) -> None:
    """Create the output folders; refuse a folder holding an export of another sequence, level, background or
    options (flags that older exports did not record count as off)."""
    settings = {"format": format, "group": plan.group, "level": plan.level, "background": plan.background, **options}
    settings_file = check_output_folder(out) / SETTINGS_FILE
    if settings_file.exists():
        found = read_json_file(settings_file, Origin(f"The export settings file {settings_file}",
                                                     "choose another output folder"))
        if not isinstance(found, dict):
            raise ConfigError(f"{settings_file} is not an export settings file; choose another output folder.")
        found = {key: found.get(key, False if key in options else None) for key in settings}
        if found != settings:
            raise ConfigError(
                f"{out} already holds an export with {found}, not {settings}; choose another output folder."
            )
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not an export folder of nersemble_zarr; choose an empty or new folder.")
    for folder in frame_folders(out, plan):
        folder.mkdir(parents=True, exist_ok=True)
    document = {**settings, "benchmark": plan.benchmark, "participant": plan.participant, "sequence": plan.sequence,
                "created_by": f"nersemble_zarr {__version__}"}
    if options.get("centre_principal_point"):  # new pixel (x, y) = stored pixel (x + dx, y + dy), per camera
        serials = [str(serial) for serial in plan.dataset[schema.SERIAL].values]
        document["principal_point_shifts"] = {serial: [int(v) for v in shift] for serial, shift in zip(serials, shifts)}
    write_atomic(settings_file, json.dumps(document, indent=1).encode())


def _tasks(store: str, out: Path, plan: ExportPlan, pending: list[Frame], shifts: np.ndarray) -> list[FramesTask]:
    """Group pending frames by camera and store shard, so each task reads one shard of one camera."""
    if not pending:
        return []
    array = storage.open_array(store, f"{plan.group}/{schema.IMAGES}")
    shard = (array.shards or array.chunks)[1]
    groups: dict[tuple[int, int], list[Frame]] = {}
    for frame in pending:
        groups.setdefault((frame.camera_index, frame.position // shard), []).append(frame)
    return [
        FramesTask(store, plan.group, out, tuple(frames), plan.background, plan.has_alpha,
                   tuple(int(v) for v in shifts[camera]))
        for (camera, _), frames in sorted(groups.items())
    ]


def write_frames(task: FramesTask) -> int:
    """Read the task's frames from the store one by one and write their PNG files; return how many."""
    serial_index = task.frames[0].camera_index
    # one read per frame, of one chunk of the shard, by the direct reader: a lost or damaged chunk is a StoreError
    # (zarr's orthogonal selection over a list of frames was measured ~100x slower, allocating GBs on full frames)
    images = frame_reader(storage.open_array(task.store, f"{task.group}/{schema.IMAGES}"))
    alpha = frame_reader(storage.open_array(task.store, f"{task.group}/{schema.ALPHA}")) if task.has_alpha else None
    for frame in task.frames:
        pixels = images((serial_index, frame.position))
        fill = 255 if task.background == "white" else 0
        if alpha is None:
            write_png(task.out / frame.image_path(), shift_picture(pixels, task.shift, fill))
            continue
        mask = alpha((serial_index, frame.position))
        picture = composite(pixels, mask, task.background)
        write_png(task.out / frame.image_path(), shift_picture(picture, task.shift, fill))
        write_png(task.out / frame.mask_path(), shift_picture(mask, task.shift, 0))
    return len(task.frames)
