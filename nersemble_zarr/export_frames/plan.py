"""What an export writes: the sequence and level, the frames (timestep x camera), which are held out for
validation, and their file names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from .. import catalogue, schema, storage
from ..cameras import first_camera_problem
from ..errors import CatalogueError, ConfigError, StoreError
from .pixels import BACKGROUNDS

IMAGES_DIR, MASKS_DIR, FLAME_DIR = "images", "fg_masks", "flame_param"


@dataclass(frozen=True)
class Frame:
    """One exported view: a timestep (original frame index) seen by one camera."""

    timestep: int
    position: int       # index along the store's timestep axis
    serial: str
    camera_index: int   # index along the store's serial axis
    has_image: bool     # False for cameras without video (benchmark hold-out)
    held_out: bool = False  # a validation frame of the export's validation split (frames with an image only)

    @property
    def stem(self) -> str:
        return f"{self.timestep:05d}_{self.serial}"

    def image_path(self) -> str:
        return f"{IMAGES_DIR}/{self.stem}.png"

    def mask_path(self) -> str:
        return f"{MASKS_DIR}/{self.stem}.png"


@dataclass(frozen=True)
class ExportPlan:
    """A resolved export: where the frames come from and every frame to list."""

    store: str
    benchmark: str
    participant: int
    sequence: str
    level: int
    background: str
    dataset: xr.Dataset        # the level's Dataset, coordinates in memory
    frames: tuple[Frame, ...]
    validation: bool = False   # a validation split chose the held-out frames

    @property
    def group(self) -> str:
        return schema.level_group(self.level, self.benchmark, self.participant, self.sequence)

    @property
    def has_alpha(self) -> bool:
        return schema.ALPHA in self.dataset

    @property
    def has_tracking(self) -> bool:
        return "expression" in self.dataset.coords


def plan_export(
    store: str,
    *,
    participant: int | None = None,
    sequence: str | None = None,
    level: int = 1,
    stride: int = 1,
    serials: tuple[str, ...] | None = None,
    background: str = "black",
    validation=None,
) -> ExportPlan:
    """Resolve and check an export: one sequence, an existing complete level, valid serials, stride, background.

    With a ``validation`` split (a ValidationSplit, or a JSON file or store holding one) the frames with an
    image that it holds out are marked ``held_out``.
    """
    if stride < 1:
        raise ConfigError(f"Stride {stride} is invalid; expected a positive number of stored frames.")
    if background not in BACKGROUNDS:
        raise ConfigError(f"Background {background!r} is invalid; expected one of {', '.join(BACKGROUNDS)}.")
    storage.read_root_attrs(store)
    benchmark, participant, sequence = _one_sequence(store, participant, sequence)
    group = schema.level_group(level, benchmark, participant, sequence)
    if not storage.group_exists(store, group):
        raise StoreError(
            f"The store has no level {level} of {schema.sequence_group(benchmark, participant, sequence)}; "
            f"run `nersemble-zarr downsample {store} --levels {level}` first."
        )
    dataset = storage.open_dataset(store, group)
    dataset = dataset.assign_coords({name: dataset[name].load() for name in dataset.coords})
    if background != "black" and schema.ALPHA not in dataset and schema.IMAGES in dataset:
        raise ConfigError(f"{group} has no alpha, so frames can only be exported on their black background.")
    all_serials = [str(serial) for serial in dataset[schema.SERIAL].values]
    _check_path_values(store, group, all_serials, dataset[schema.TIMESTEP].values)
    chosen = _check_serials(serials, all_serials, group)
    _check_cameras(store, group, dataset, [all_serials.index(serial) for serial in chosen])
    with_video = [s for s in dataset.attrs.get(schema.VIDEO_SERIALS_ATTR, []) if s in chosen]
    _check_complete(store, group, dataset, with_video, all_serials)
    timesteps = dataset[schema.TIMESTEP].values
    held_out = _held_out(validation, benchmark, sequence, chosen, dataset.sizes[schema.TIMESTEP])
    frames = []
    for position in range(0, dataset.sizes[schema.TIMESTEP], stride):
        for serial in chosen:
            has_image = serial in with_video
            frames.append(Frame(int(timesteps[position]), position, serial, all_serials.index(serial), has_image,
                                held_out=has_image and held_out is not None and bool(held_out[serial][position])))
    return ExportPlan(store, benchmark, participant, sequence, level, background, dataset, tuple(frames),
                      validation=held_out is not None)


def check_validation_frames(plan: ExportPlan) -> None:
    """Refuse a validation split that leaves the exported views without a train or without a validation frame."""
    held_out = [frame.held_out for frame in plan.frames]
    if not any(held_out):
        raise ConfigError(f"The validation split holds out none of the frames exported from {plan.group}; "
                          "export without --split, or with a split that holds out some of them.")
    if all(held_out):
        raise ConfigError(f"The validation split holds out every frame exported from {plan.group}, leaving none to "
                          "train on; export it without --split.")


def _check_cameras(store: str, group: str, dataset: xr.Dataset, cameras: list[int]) -> None:
    """Refuse, before any work, cameras that no writer may write: every format's transforms come from these."""
    size = tuple(dataset.attrs.get(name) for name in (schema.WIDTH_ATTR, schema.HEIGHT_ATTR))
    image_size = size if all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size) else None
    found = first_camera_problem(
        [str(serial) for serial in dataset[schema.SERIAL].values[cameras]],
        dataset[schema.WORLD_2_CAM].values[cameras], dataset[schema.INTRINSICS].values[cameras], image_size,
    )
    if found is not None:
        serial, problem = found
        raise StoreError(f"The store {store} holds an unusable calibration of camera {serial} in {group}: {problem}; "
                         "convert it again from a correct camera_params.json.")


def _check_path_values(store: str, group: str, serials: list[str], timesteps: np.ndarray) -> None:
    """Refuse store values that become parts of file names (serials, timesteps) unless they are plain names
    and non-negative integers, so a damaged or hostile store cannot name a file outside the export folder."""
    for serial in serials:
        try:
            catalogue.check_safe_name(serial, "camera serial")
        except CatalogueError as error:
            raise StoreError(
                f"The store {store} cannot be exported: {group} has the camera serial {serial[:60]!r}, which is not "
                "a plain name (letters, digits, '_', '+', '-'); refusing to use it in a file name."
            ) from error
    if timesteps.dtype.kind not in "iu" or (timesteps.size and timesteps.min() < 0):
        raise StoreError(
            f"The store {store} cannot be exported: the timestep coordinate of {group} holds {timesteps.dtype} "
            "values that are not all non-negative integers; refusing to use them in file names."
        )


def _held_out(validation, benchmark: str, sequence: str, serials: list[str], n_timesteps: int):
    """serial -> validation mask over stored positions, or None without a validation split."""
    if validation is None:
        return None
    from ..evaluation.splits import read_split

    split = read_split(validation)
    if split.benchmark != benchmark:
        raise ConfigError(f"The validation split is for {split.benchmark}, not {benchmark}.")
    return {serial: split.validation_mask(sequence, serial, n_timesteps) for serial in serials}


def _one_sequence(store: str, participant: int | None, sequence: str | None) -> tuple[str, int, str]:
    keys = storage.select_sequences(
        store, participants=None if participant is None else [participant],
        sequences=None if sequence is None else [sequence],
    )
    if not keys:
        raise StoreError(
            f"The store {store} has no sequence for participant {participant if participant is not None else 'any'} "
            f"and sequence {sequence or 'any'}; list them with `nersemble-zarr info {store}`."
        )
    if len(keys) > 1:
        names = ", ".join(schema.sequence_group(*key) for key in keys)
        raise ConfigError(
            f"The store holds {len(keys)} matching sequences ({names}); choose one with --participant and --sequence."
        )
    catalogue.check_safe_name(keys[0][2], "sequence")
    return keys[0]


def _check_serials(serials: tuple[str, ...] | None, all_serials: list[str], group: str) -> list[str]:
    """The chosen cameras in store order (all when ``serials`` is None)."""
    if not serials:
        return all_serials
    for serial in serials:
        catalogue.check_serial(serial)
        if serial not in all_serials:
            raise CatalogueError(f"Camera {serial} is not among the cameras of {group}.")
    return [serial for serial in all_serials if serial in serials]


def _check_complete(store: str, group: str, dataset: xr.Dataset, with_video: list[str], all_serials: list[str]) -> None:
    if not with_video:
        return
    done = storage.camera_flags(store, group, schema.ALPHA in dataset)
    missing = [serial for serial in with_video if not done[all_serials.index(serial)]]
    if missing:
        level = dataset.attrs.get(schema.LEVEL_ATTR)
        command = f"convert ROOT {store}" if level is None else f"downsample {store} --levels {level}"
        raise StoreError(
            f"Camera {missing[0]} of {group} is not completely written; "
            f"run `nersemble-zarr {command}` again to finish it."
        )


def frame_folders(out: Path, plan: ExportPlan) -> list[Path]:
    """The folders an export writes files into."""
    folders = [out / IMAGES_DIR] + ([out / MASKS_DIR] if plan.has_alpha else [])
    return folders + ([out / FLAME_DIR] if plan.has_tracking else [])


def pending_frames(out: Path, plan: ExportPlan) -> list[Frame]:
    """Frames with an image whose files are not all on disk yet (files appear only when complete)."""
    def complete(frame: Frame) -> bool:
        return (out / frame.image_path()).exists() and (not plan.has_alpha or (out / frame.mask_path()).exists())

    return [frame for frame in plan.frames if frame.has_image and not complete(frame)]
