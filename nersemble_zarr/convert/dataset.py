"""What to convert from a fetched NeRSemble v2 dataset (``ROOT/dataset``), validated before anything is written.

The names come from the dataset's ``metadata_sequences.csv`` (the ``sources`` package's listing rules: unknown
participants and sequences are refused, a range keeps the listed ids); the files are the official kit's layout
(``sources.dataset``). A sequence is planned at one resolution level, colour-corrected or not: its frames are
decoded, area-averaged to the level and corrected on the way into the store (``frames``), so the full-resolution
frames are never written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import schema
from ..errors import ConfigError, InputDataError, shown
from ..inputs.calibration import Cameras
from ..inputs.colour_calibration import read_colour_calibration
from ..inputs.dataset_calibration import read_dataset_calibration
from ..inputs.dataset_index import SEQUENCES_CSV, parse_sequences_csv
from ..inputs.files import distinct_files, read_limited, regular_file
from ..inputs.jsontext import MAX_JSON_BYTES
from ..inputs.origin import Origin
from ..levels.resample import level_size, scale_intrinsics
from ..sources import get_source
from ..sources.base import Listing
from ..sources.dataset import background_path, calibration_path, colour_calibration_path, video_path
from ..video import probe_many
from .plan import SequenceSource


@dataclass(frozen=True)
class DatasetInputs:
    """What a dataset sequence adds to its ``SequenceSource``: the level and colour correction it is converted
    at, its files by camera serial, and the calibration texts kept verbatim."""

    level: int
    colour_correct: bool
    full_height: int
    full_width: int
    videos: Mapping[str, Path]
    backgrounds: Mapping[str, Path]
    colour_matrices: Mapping[str, np.ndarray]  # serial -> (3, terms); empty without a color_calibration.json
    calibration_json: str
    colour_calibration_json: str | None
    calibration_source: str
    colour_calibration_source: str

    def colour_matrix(self, serial: str) -> np.ndarray | None:
        """The matrix the frames of ``serial`` are corrected with (None when not correcting)."""
        return self.colour_matrices[serial] if self.colour_correct else None


def check_level(level: int) -> int:
    """A resolution level to convert at (1 = full resolution), or a ConfigError naming it."""
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level < 1:
        raise ConfigError(f"Resolution level {shown(level)} is invalid; expected 1 (full resolution) or an integer "
                          "of at least 2.")
    return int(level)


def dataset_listing(dataset_root: Path) -> tuple[Listing, frozenset[int]]:
    """The fetched ``metadata_sequences.csv``: (participants and their sequences, those with BACKGROUND pictures)."""
    path = dataset_root / SEQUENCES_CSV
    if not path.is_file():
        raise InputDataError(f"The dataset index {path} is missing; fetch it with `nersemble-zarr fetch "
                             f"{dataset_root.parent} dataset`.")
    origin = Origin.local(path, "dataset index")
    sequences, backgrounds = parse_sequences_csv(read_limited(path, origin, MAX_JSON_BYTES), origin)
    return Listing(sequences, {}, str(path)), backgrounds


def plan_dataset(
    root: Path,
    participants: tuple[int, ...] | None = None,
    sequences: tuple[str, ...] | None = None,
    cameras: tuple[str, ...] | None = None,
    *,
    level: int = 1,
    colour_correct: bool = False,
) -> list[SequenceSource]:
    """List and check the dataset sequences to convert from ROOT/dataset.

    Without ``participants``, every participant the index lists that has a folder is taken; without
    ``sequences``, each one's listed sequences that were fetched (a folder with videos). Named participants and
    sequences must be listed and fetched. Every video is probed (frame count and size equal across the
    sequence's cameras), every camera with a video must have a matrix in ``camera_params.json`` (and in
    ``color_calibration.json`` when ``colour_correct``), every BACKGROUND picture must have the videos' size.
    """
    level = check_level(level)
    source = get_source(schema.DATASET)
    dataset_root = Path(root) / schema.DATASET
    if not dataset_root.is_dir():
        raise InputDataError(f"No fetched dataset under {root}; run `nersemble-zarr fetch {root} dataset`.")
    listing, backgrounds = dataset_listing(dataset_root)
    selection = source.select(participants, sequences, cameras)
    if selection.participants is None:
        fetched = tuple(p for p in listing.sequences if (dataset_root / f"{p:03d}").is_dir())
        if not fetched:
            raise InputDataError(f"No participant folders under {dataset_root}; nothing to convert.")
        selection = source.select(fetched, sequences, cameras)
    plans = []
    for participant, names in source.chosen_sequences(selection, listing):
        folder = dataset_root / f"{participant:03d}"
        if not folder.is_dir():
            raise InputDataError(f"Participant {participant} was not fetched (no folder {folder}); run "
                                 f"`nersemble-zarr fetch {root} dataset -p {participant}`.")
        fetched_names = [s for s in names if _videos_folder(dataset_root, participant, s).is_dir()]
        if selection.sequences is not None and len(fetched_names) != len(names):
            missing = next(s for s in names if s not in fetched_names)
            raise InputDataError(f"Sequence {missing} of participant {participant} was not fetched (no folder "
                                 f"{_videos_folder(dataset_root, participant, missing)}).")
        if not fetched_names:  # only its calibrations or pictures were fetched: nothing of it to convert
            continue
        calibration = _Calibration.read(dataset_root, participant, colour_correct)
        has_backgrounds = participant in backgrounds
        plans += [
            _plan_sequence(dataset_root, participant, name, calibration, selection.cameras, has_backgrounds, level,
                           colour_correct)
            for name in fetched_names
        ]
    return plans


@dataclass(frozen=True)
class _Calibration:
    """A participant's calibration files, read and checked once for all its sequences."""

    world_2_cam: Mapping[str, np.ndarray]
    intrinsics: np.ndarray
    colour_matrices: Mapping[str, np.ndarray]
    text: str
    colour_text: str | None
    path: Path
    colour_path: Path

    @classmethod
    def read(cls, dataset_root: Path, participant: int, colour_correct: bool) -> "_Calibration":
        path, colour_path = dataset_root / calibration_path(participant), dataset_root / colour_calibration_path(
            participant)
        if not path.is_file():
            raise InputDataError(f"The camera calibration {path} is missing; fetch it with `nersemble-zarr fetch "
                                 f"{dataset_root.parent} dataset -p {participant}`.")
        world_2_cam, intrinsics = read_dataset_calibration(path)
        colour_matrices, colour_text = {}, None
        if colour_path.is_file() or colour_path.is_symlink() or colour_correct:
            if not colour_path.is_file():
                raise InputDataError(f"The colour calibration {colour_path} is missing, and --colour-correct needs "
                                     f"it; fetch it with `nersemble-zarr fetch {dataset_root.parent} dataset -p "
                                     f"{participant}`.")
            colour_matrices = read_colour_calibration(colour_path)
            colour_text = _text(colour_path, "colour calibration")
        return cls(world_2_cam, intrinsics, colour_matrices, _text(path, "camera calibration"), colour_text, path,
                   colour_path)


def _text(path: Path, kind: str) -> str:
    """A JSON file's text, kept verbatim (it was parsed and checked already)."""
    origin = Origin.local(path, kind)
    return read_limited(path, origin, MAX_JSON_BYTES).decode("utf-8")


def _plan_sequence(
    dataset_root: Path, participant: int, sequence: str, calibration: _Calibration, cameras: tuple[str, ...] | None,
    has_backgrounds: bool, level: int, colour_correct: bool,
) -> SequenceSource:
    serials = tuple(calibration.world_2_cam)
    videos = {s: dataset_root / video_path(participant, sequence, s)
              for s in _fetched_serials(dataset_root, participant, sequence)}
    for serial, video in videos.items():
        if serial not in calibration.world_2_cam:
            raise InputDataError(f"The calibration {calibration.path} has no camera {serial}, whose video {video} "
                                 "was fetched; fetch the calibration again.")
    if cameras is not None:
        for serial in cameras:
            if serial not in videos:
                raise InputDataError(f"The video {dataset_root / video_path(participant, sequence, serial)} was not "
                                     f"fetched; fetch it or leave camera {serial} out of --cameras.")
        videos = {s: v for s, v in videos.items() if s in cameras}
    if not videos:
        folder = _videos_folder(dataset_root, participant, sequence)
        raise InputDataError(f"The folder {folder} holds no camera video (cam_SERIAL.mp4); fetch the sequence again.")
    ordered = tuple(s for s in serials if s in videos)
    if calibration.colour_matrices:
        for serial in ordered:
            if serial not in calibration.colour_matrices:
                raise InputDataError(f"The colour calibration {calibration.colour_path} has no matrix for camera "
                                     f"{serial}, whose video {videos[serial]} was fetched; fetch it again.")
        terms = {calibration.colour_matrices[s].shape for s in ordered}
        if len(terms) > 1:
            raise InputDataError(f"The colour calibration {calibration.colour_path} has matrices of different sizes "
                                 f"({', '.join(str(t) for t in sorted(terms))}) for one sequence's cameras.")
    paths = [videos[s] for s in ordered]
    for path in paths:
        regular_file(path, Origin.local(path, "video"))
    distinct_files(paths, "video")
    n_frames, size = _probe_all(paths)
    height, width = level_size(*size, level)
    if min(height, width) < 1:
        raise ConfigError(f"Resolution level {level} is too coarse for the {size[1]}x{size[0]} videos of "
                          f"participant {participant}, {sequence}.")
    background_files = _backgrounds(dataset_root, participant, ordered, size) if has_backgrounds else {}
    intrinsics = scale_intrinsics(np.broadcast_to(calibration.intrinsics, (len(serials), 3, 3)), level)
    cams = Cameras(serials, np.array([calibration.world_2_cam[s] for s in serials]).reshape(-1, 4, 4), intrinsics)
    inputs = DatasetInputs(
        level=level, colour_correct=colour_correct, full_height=size[0], full_width=size[1], videos=videos,
        backgrounds=background_files, colour_matrices=dict(calibration.colour_matrices),
        calibration_json=calibration.text, colour_calibration_json=calibration.colour_text,
        calibration_source=f"{schema.DATASET}/{calibration_path(participant)}",
        colour_calibration_source=f"{schema.DATASET}/{colour_calibration_path(participant)}",
    )
    return SequenceSource(
        benchmark=schema.DATASET, participant=participant, sequence=sequence, benchmark_root=dataset_root,
        timesteps=np.arange(n_frames, dtype=np.int64), cameras=cams, video_serials=ordered, has_alpha=False,
        height=height, width=width, dataset=inputs,
    )


def _videos_folder(dataset_root: Path, participant: int, sequence: str) -> Path:
    """The folder of a sequence's videos (``{p:03d}/sequences/{sequence}/images``)."""
    return (dataset_root / video_path(participant, sequence, "SERIAL")).parent


def _fetched_serials(dataset_root: Path, participant: int, sequence: str) -> list[str]:
    """Serials of the sequence's fetched videos (``cam_{serial}.mp4``; a symbolic link counts, to be refused)."""
    folder = _videos_folder(dataset_root, participant, sequence)
    return sorted(
        entry.name[len("cam_"):-len(".mp4")] for entry in folder.iterdir()
        if entry.name.startswith("cam_") and entry.name.endswith(".mp4") and (entry.is_file() or entry.is_symlink())
    )


def _probe_all(paths: list[Path]) -> tuple[int, tuple[int, int]]:
    """(frame count, (height, width)) shared by every video, else an InputDataError naming the odd one."""
    first = None
    for path, info in zip(paths, probe_many(paths, quick=True)):
        found = (info.n_frames, (info.height, info.width))
        if first is None:
            first = (path, found)
        elif found[0] != first[1][0]:
            raise InputDataError(f"The video {path} has {found[0]} frames; {first[0]} of the same sequence has "
                                 f"{first[1][0]}.")
        elif found[1] != first[1][1]:
            raise InputDataError(f"The video {path} is {found[1][1]}x{found[1][0]}; {first[0]} of the same sequence "
                                 f"is {first[1][1][1]}x{first[1][1][0]}.")
    if first[1][0] < 1:
        raise InputDataError(f"The video {first[0]} has no frames; fetch it again.")
    return first[1]


def _backgrounds(dataset_root: Path, participant: int, serials: tuple[str, ...], size: tuple[int, int]
                 ) -> dict[str, Path]:
    """serial -> BACKGROUND picture, for the cameras whose picture was fetched; each one's size is checked."""
    from PIL import Image, UnidentifiedImageError

    found = {}
    for serial in serials:
        path = dataset_root / background_path(participant, serial)
        if not (path.is_file() or path.is_symlink()):
            continue
        regular_file(path, Origin.local(path, "background picture"))
        try:
            with Image.open(path) as picture:
                width, height = picture.size
                kind = picture.format
        except (OSError, UnidentifiedImageError, ValueError) as error:
            raise InputDataError(f"The background picture {path} is not a readable JPEG ({error}); fetch it "
                                 "again.") from None
        if kind != "JPEG" or (height, width) != size:
            raise InputDataError(f"The background picture {path} is a {width}x{height} {kind}; expected a "
                                 f"{size[1]}x{size[0]} JPEG like the videos; fetch it again.")
        found[serial] = path
    return found
