"""VHAP's NeRSemble v2 input, written from a ``dataset`` group of the store, so that VHAP's
``track_nersemble_v2.py`` runs on it without ``preprocess_video.py``.

Layout of OUT (VHAP's ``--data.root_folder``), as VHAP's preprocessing leaves it:

* ``{p:03d}/calibration/camera_params.json``: the downloaded file as the store keeps it, verbatim (VHAP lists the cameras in its key
  order and takes the one at position 8 for validation); narrowed to the stored cameras, keys in the same order,
  when the store holds only some of them (VHAP opens a frame of every listed camera);
* ``{p:03d}/calibration/color_calibration.json``: the downloaded file, verbatim;
* ``{p:03d}/sequences/{SEQ}/images_{N}/cam_{serial}_{n:06d}.jpg`` (``images/`` at level 1): frame ``n`` at
  ``fps`` is the 73 fps frame that ffmpeg's ``fps`` filter picks (:func:`source_frames`), at the level's size;
* ``{p:03d}/sequences/BACKGROUND/image_{serial}.jpg``: the empty studio at the level's size (BackgroundMattingV2
  needs it at the size of the frames it mattes).

The images folder holds ``nersemble_export.json`` (the export's settings): a rerun with the same settings skips the
files already written (each is written atomically), other settings are refused. Calibration files already there
are kept when they are byte for byte what this export writes, background pictures when they have the level's
size; anything else there is refused, never replaced.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, catalogue, schema, storage
from ..atomic import remove_partial_files, write_atomic
from ..chunk_reader import frame_reader
from ..errors import CatalogueError, ConfigError, OutputError, StoreError
from ..inputs.jsontext import parse_json, read_json_file
from ..inputs.origin import Origin
from ..outputs import check_output_folder
from ..parallel import run_tasks
from ..progress import Progress, set_total
from ..sources.dataset import FPS as SOURCE_FPS
from ..sources.dataset import background_path, calibration_path, colour_calibration_path

BENCHMARK = schema.DATASET
DEFAULT_FPS = 25  # VHAP's preprocess_video.py target_fps
JPEG_QUALITY = 97  # with full-resolution chroma: ~1 level mean error on the synthetic frames (~1.5 at 95, 4:2:0)
JPEG_SUBSAMPLING = "444"
SETTINGS_FILE = "nersemble_export.json"
MATTING_MULTIPLE = 4  # BackgroundMattingV2 takes frame sizes divisible by 4


def source_frames(n_source: int, fps: int) -> list[int]:
    """The 73 fps frame behind each output frame of ffmpeg's ``fps={fps}`` filter on an ``n_source``-frame video.

    The filter rounds each input time to the nearest output slot (halves up), outputs in slot ``n`` the last input
    that rounded to at most ``n``, i.e. frame ``ceil((n + 0.5) * 73 / fps) - 1``, and stops at the video's end,
    ``round(n_source * fps / 73)`` frames.
    """
    count = (2 * n_source * fps + SOURCE_FPS) // (2 * SOURCE_FPS)
    return [min(((2 * n + 1) * SOURCE_FPS - 1) // (2 * fps), n_source - 1) for n in range(count)]


def images_folder(level: int) -> str:
    """VHAP's name of the frames' folder for ``--data.n_downsample_rgb level`` (``images`` without the option)."""
    return "images" if level == 1 else f"images_{level}"


@dataclass(frozen=True)
class V2Plan:
    """A resolved vhap-v2 export: the group, its cameras, the frames to write and the calibration texts."""

    store: str
    group: str
    participant: int
    sequence: str
    level: int
    fps: int
    serials: tuple[str, ...]
    width: int
    height: int
    frames: tuple[tuple[int, int], ...]  # (output frame n, position along the store's timestep axis)
    colour_corrected: bool
    camera_params: str                   # the camera_params.json text to write
    colour_calibration: str              # the color_calibration.json text to write
    has_background: bool

    def sequence_folder(self, out: Path) -> Path:
        return out / f"{self.participant:03d}" / "sequences" / self.sequence

    def images_dir(self, out: Path) -> Path:
        return self.sequence_folder(out) / images_folder(self.level)

    def image_path(self, out: Path, serial: str, n: int) -> Path:
        return self.images_dir(out) / f"cam_{serial}_{n:06d}.jpg"

    def background_path(self, out: Path, serial: str) -> Path:
        return out / background_path(self.participant, serial)

    def background_dir(self, out: Path) -> Path:
        return self.background_path(out, self.serials[0]).parent

    def settings(self) -> dict[str, Any]:
        return {"format": "vhap-v2", "group": self.group, "level": self.level, "fps": self.fps,
                "colour_corrected": self.colour_corrected}


@dataclass
class V2Summary:
    """What a vhap-v2 export did, and the lines telling what VHAP still has to do."""

    group: str
    frames_written: int = 0
    frames_skipped: int = 0
    backgrounds_written: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CameraTask:
    """Write the pending frames (and background) of one camera."""

    store: str
    group: str
    camera_index: int
    frames: tuple[tuple[int, Path], ...]  # (store position, file)
    background: Path | None


def export_vhap_v2(
    store: str | os.PathLike,
    out: str | os.PathLike,
    *,
    participant: int | None,
    sequence: str | None,
    level: int = 1,
    fps: int = DEFAULT_FPS,
    workers: int = 4,
    client: Any = None,
    progress: Progress | None = None,
) -> V2Summary:
    """Write VHAP's preprocessed NeRSemble v2 input for one sequence of ``store`` at ``level`` into ``out``
    (resumable); ``progress`` is told the number of cameras (``set_total``) and called as each finishes."""
    plan = plan_vhap_v2(os.fspath(store), participant, sequence, level, fps)
    out = Path(out)
    try:
        _claim(out, plan)
        _write_if_absent(out / calibration_path(plan.participant), plan.camera_params.encode())
        _write_if_absent(out / colour_calibration_path(plan.participant), plan.colour_calibration.encode())
        tasks, skipped = _tasks(out, plan)
        set_total(progress, len(tasks))
        written = run_tasks(write_camera, tasks, workers=workers, client=client, progress=progress)
        for folder in (plan.images_dir(out), plan.background_dir(out)):
            if folder.is_dir():
                remove_partial_files(folder)
    except OSError as error:  # a folder in the way, no space, no permission: files written so far are complete
        raise OutputError(f"Writing the vhap-v2 export into {out} failed at {error.filename or out}: "
                          f"{error.strerror or type(error).__name__}; fix that and rerun to resume.") from None
    return V2Summary(plan.group, sum(n for n, _ in written), skipped, sum(b for _, b in written),
                     handover_notes(plan, out))


def plan_vhap_v2(store: str, participant: int | None, sequence: str | None, level: int, fps: int) -> V2Plan:
    """Resolve and check a vhap-v2 export before anything is written; bad input is one sentence."""
    if participant is None or sequence is None:
        raise ConfigError("--format vhap-v2 exports one sequence: give --participant and --sequence.")
    if fps < 1:
        raise ConfigError(f"Frame rate {fps} is invalid; expected a positive whole number of frames per second.")
    if level < 1:
        raise ConfigError(f"Level {level} is invalid; expected a positive downsampling factor.")
    catalogue.check_safe_name(sequence, "sequence")
    storage.read_root_attrs(store)
    group = _find_group(store, int(participant), sequence, level)
    dataset = storage.open_dataset(store, group)
    attrs = dataset.attrs
    if attrs.get(schema.BENCHMARK_ATTR) != BENCHMARK:
        raise StoreError(f"The group {group} of {store} is not a NeRSemble v2 dataset group (its benchmark is "
                         f"{attrs.get(schema.BENCHMARK_ATTR)!r}); convert the dataset with -b dataset.")
    if not attrs.get(schema.CONVERTED_ATTR):
        raise StoreError(f"The group {group} of {store} is not completely converted; run the same "
                         "`nersemble-zarr convert ... -b dataset` again to finish it.")
    serials = [str(serial) for serial in dataset[schema.SERIAL].values]
    height, width = _check_images(store, group, dataset)
    timesteps = dataset[schema.TIMESTEP].values
    _check_names(store, group, serials, timesteps)
    positions = {int(t): i for i, t in enumerate(timesteps)}
    n_source = int(timesteps.max()) + 1 if timesteps.size else 0
    picked = source_frames(n_source, fps)
    if not picked:
        raise ConfigError(f"The {n_source} frame(s) of {group} in {store} make no frame at {fps} fps; choose a "
                          "higher --fps.")
    missing = [frame for frame in picked if frame not in positions]
    if missing:
        raise StoreError(f"The group {group} of {store} lacks frame {missing[0]} of the 73 fps video that "
                         f"resampling to {fps} fps picks; convert the whole sequence.")
    return V2Plan(
        store, group, int(participant), sequence, level, fps, tuple(serials), width, height,
        tuple((n, positions[frame]) for n, frame in enumerate(picked)),
        bool(attrs.get(schema.COLOUR_CORRECTED_ATTR, False)),
        camera_params_text(_text_attr(store, group, attrs, schema.CALIBRATION_JSON_ATTR), serials, f"{store} {group}"),
        _text_attr(store, group, attrs, schema.COLOUR_CALIBRATION_JSON_ATTR),
        schema.BACKGROUND in dataset,
    )


def camera_params_text(text: str, serials: list[str], where: str) -> str:
    """camera_params.json for the stored cameras: ``text`` verbatim when it lists exactly them, else the same
    document with ``world_2_cam`` narrowed to them (key order kept); a stored camera it lacks is refused."""
    document = parse_json(text.encode(), Origin(f"The calibration stored in {where}", "convert the sequence again"))
    if not isinstance(document, dict) or not isinstance(document.get("world_2_cam"), dict):
        raise StoreError(f"The calibration stored in {where} is not a camera_params.json with world_2_cam; "
                         "convert the sequence again.")
    listed = list(document["world_2_cam"])
    unlisted = [serial for serial in serials if serial not in listed]
    if unlisted:
        raise StoreError(f"The calibration stored in {where} has no camera {unlisted[0]}, which the store holds; "
                         "convert the sequence again.")
    if len(listed) == len(serials):
        return text
    world_2_cam = {serial: document["world_2_cam"][serial] for serial in listed if serial in serials}
    return json.dumps({**document, "world_2_cam": world_2_cam}, indent=2) + "\n"


def handover_notes(plan: V2Plan, out: Path) -> tuple[str, ...]:
    """The lines telling what VHAP still has to do with the export (printed by the CLI)."""
    folder = images_folder(plan.level)
    notes = [
        "VHAP still has to detect landmarks (track_nersemble_v2.py does it when they are absent) and, for options "
        f"that read alpha maps, matte the frames into {plan.sequence}/alpha_maps (BackgroundMattingV2 with the "
        "BACKGROUND pictures, or RVM); both download network weights and need a CUDA GPU."
    ]
    if plan.width % MATTING_MULTIPLE or plan.height % MATTING_MULTIPLE:
        notes.append(f"BackgroundMattingV2 needs frame sizes divisible by {MATTING_MULTIPLE}; {folder} is "
                     f"{plan.width}x{plan.height}, so matte with RVM or export another level.")
    if not plan.has_background:
        notes.append(f"{plan.group} has no background pictures, so BACKGROUND is not written: matte with RVM.")
    if plan.colour_corrected:
        notes.append("The frames are colour-corrected already: run VHAP with --data.no_use_color_correction "
                     "(or export a store converted without --colour-correct).")
    downsample = "" if plan.level == 1 else f" --data.n_downsample_rgb {plan.level}"
    correction = " --data.no_use_color_correction" if plan.colour_corrected else ""
    notes.append(f"Then track: python vhap/track_nersemble_v2.py --data.root_folder {out} --data.subject "
                 f"{plan.participant:03d} --data.sequence {plan.sequence}{downsample}{correction}")
    return tuple(notes)


def write_camera(task: CameraTask) -> tuple[int, int]:
    """Write one camera's pending frames and background as JPEG files; return (frames, backgrounds) written."""
    images = frame_reader(storage.open_array(task.store, f"{task.group}/{schema.IMAGES}"))
    for position, path in task.frames:
        _write_jpeg(path, images((task.camera_index, position)))
    if task.background is None:
        return len(task.frames), 0
    background = storage.open_array(task.store, f"{task.group}/{schema.BACKGROUND}")
    _write_jpeg(task.background, np.asarray(background[task.camera_index]))
    return len(task.frames), 1


# ---------------------------------------------------------------- checks
def _find_group(store: str, participant: int, sequence: str, level: int) -> str:
    """The group of the sequence at ``level``, or a sentence naming what the store lacks."""
    group = schema.level_group(level, BENCHMARK, participant, sequence)
    if storage.group_exists(store, group):
        return group
    levels = [1] if storage.group_exists(store, schema.sequence_group(BENCHMARK, participant, sequence)) else []
    levels += storage.existing_levels(store, BENCHMARK, participant, sequence)
    if levels:
        raise StoreError(f"The store {store} has {BENCHMARK}/{participant}/{sequence} at level(s) "
                         f"{', '.join(map(str, levels))}, not at level {level}; convert it with --level {level}.")
    trees = [""] + [f"{schema.LEVEL_PREFIX}{n}/" for n in storage.level_numbers(storage.open_group(store))]
    if not any(storage.group_exists(store, f"{tree}{BENCHMARK}") for tree in trees):
        raise StoreError(f"The store {store} holds no NeRSemble v2 dataset group; convert the dataset into it with "
                         f"`nersemble-zarr convert ROOT {store} -b dataset`.")
    if not any(storage.group_exists(store, f"{tree}{BENCHMARK}/{participant}") for tree in trees):
        raise StoreError(f"The store {store} holds no participant {participant} of the dataset; list its sequences "
                         f"with `nersemble-zarr info {store}`.")
    raise StoreError(f"The store {store} holds no sequence {sequence!r} of participant {participant}; list its "
                     f"sequences with `nersemble-zarr info {store}`.")


def _check_images(store: str, group: str, dataset) -> tuple[int, int]:
    """(height, width) of the group's frames, after checking they are (serial, timestep, y, x, 3) uint8."""
    dims = (schema.SERIAL, schema.TIMESTEP, schema.Y, schema.X, schema.CHANNEL)
    images = dataset.get(schema.IMAGES)
    if images is None or images.dims != dims or images.dtype != np.uint8 or images.shape[-1] != 3:
        found = "none" if images is None else f"{images.dtype} {dict(images.sizes)}"
        raise StoreError(f"The group {group} of {store} holds no RGB frames (serial, timestep, y, x, channel) "
                         f"uint8 (found {found}); convert the sequence again.")
    height, width = images.shape[2:4]
    background = dataset.get(schema.BACKGROUND)
    if background is not None and (background.shape != (images.shape[0], height, width, 3)
                                   or background.dtype != np.uint8):
        raise StoreError(f"The background of {group} in {store} is {background.dtype} {tuple(background.shape)}, "
                         f"not uint8 {(images.shape[0], height, width, 3)}; convert the sequence again.")
    return int(height), int(width)


def _check_names(store: str, group: str, serials: list[str], timesteps: np.ndarray) -> None:
    """Refuse serials and timesteps that cannot be parts of file names (a damaged or hostile store)."""
    for serial in serials:
        try:
            catalogue.check_safe_name(serial, "camera serial")
        except CatalogueError:
            raise StoreError(f"The group {group} of {store} has the camera serial {serial[:60]!r}, which is not a "
                             "plain name; refusing to use it in a file name.") from None
    if timesteps.dtype.kind not in "iu" or (timesteps.size and timesteps.min() < 0):
        raise StoreError(f"The timestep coordinate of {group} in {store} holds {timesteps.dtype} values that are "
                         "not all non-negative frame indices; convert the sequence again.")


def _text_attr(store: str, group: str, attrs: dict, name: str) -> str:
    value = attrs.get(name)
    if not isinstance(value, str):
        raise StoreError(f"The group {group} of {store} has no {name} attribute (the downloaded file's text); "
                         "convert the sequence again.")
    return value


# ---------------------------------------------------------------- writing
def _claim(out: Path, plan: V2Plan) -> None:
    """Check, before writing, that every file this export would replace is its own; record its settings."""
    check_output_folder(out)
    images_dir = plan.images_dir(out)
    settings_file = images_dir / SETTINGS_FILE
    if settings_file.exists():
        found = read_json_file(settings_file, Origin(f"The export settings file {settings_file}",
                                                     "choose another output folder"))
        found = {key: found.get(key) for key in plan.settings()} if isinstance(found, dict) else found
        if found != plan.settings():
            raise ConfigError(f"{images_dir} already holds an export with {found}, not {plan.settings()}; choose "
                              "another output folder.")
    elif images_dir.exists() and any(images_dir.iterdir()):
        raise ConfigError(f"{images_dir} exists and is not a vhap-v2 export of nersemble_zarr; choose another "
                          "output folder.")
    for relative, text in ((calibration_path(plan.participant), plan.camera_params),
                           (colour_calibration_path(plan.participant), plan.colour_calibration)):
        path = out / relative
        if path.exists() and (not path.is_file() or path.read_bytes() != text.encode()):
            raise ConfigError(f"{path} exists and differs from the calibration of {plan.group}; choose another "
                              "output folder.")
    if plan.has_background:
        _check_backgrounds(out, plan)
    images_dir.mkdir(parents=True, exist_ok=True)
    document = {**plan.settings(), "participant": plan.participant, "sequence": plan.sequence,
                "created_by": f"nersemble_zarr {__version__}"}
    write_atomic(settings_file, json.dumps(document, indent=1).encode())


def _check_backgrounds(out: Path, plan: V2Plan) -> None:
    """Refuse background pictures already there at another size: VHAP keeps one per camera for all levels."""
    import imagecodecs

    for serial in plan.serials:
        path = plan.background_path(out, serial)
        if not path.exists():
            continue
        try:
            shape = imagecodecs.jpeg8_decode(path.read_bytes()).shape[:2] if path.is_file() else None
        except Exception:  # any undecodable file: not one of ours
            shape = None
        if shape != (plan.height, plan.width):
            raise ConfigError(f"{path} exists and is not a {plan.width}x{plan.height} picture of the level-"
                              f"{plan.level} studio; VHAP keeps one background per camera, so export each level "
                              "into its own folder.")


def _write_if_absent(path: Path, data: bytes) -> None:
    if not path.exists():
        write_atomic(path, data)


def _tasks(out: Path, plan: V2Plan) -> tuple[list[CameraTask], int]:
    """One task per camera with pending files, and the number of frames already there."""
    tasks, skipped = [], 0
    for index, serial in enumerate(plan.serials):
        files = [(position, plan.image_path(out, serial, n)) for n, position in plan.frames]
        pending = tuple((position, path) for position, path in files if not path.exists())
        skipped += len(files) - len(pending)
        background = plan.background_path(out, serial) if plan.has_background else None
        background = background if background is not None and not background.exists() else None
        if pending or background is not None:
            tasks.append(CameraTask(plan.store, plan.group, index, pending, background))
    return tasks, skipped


def _write_jpeg(path: Path, picture: np.ndarray) -> None:
    import imagecodecs

    write_atomic(path, imagecodecs.jpeg8_encode(np.ascontiguousarray(picture), level=JPEG_QUALITY,
                                                  subsampling=JPEG_SUBSAMPLING))
