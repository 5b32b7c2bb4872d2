"""What to convert: the sequences found in a fetched folder, validated before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import catalogue
from ..errors import CatalogueError, InputDataError, shown
from ..inputs.calibration import Cameras, read_calibration
from ..inputs.files import distinct_files, regular_file
from ..inputs.origin import Origin
from ..inputs.pointcloud import check_pointcloud
from ..inputs.tracking import read_tracking
from ..video import probe, probe_many
from . import sources

if TYPE_CHECKING:
    from .dataset import DatasetInputs


@dataclass(frozen=True)
class SequenceSource:
    """Everything the converter needs about one (benchmark, participant, sequence), already checked."""

    benchmark: str
    participant: int
    sequence: str
    benchmark_root: Path
    timesteps: np.ndarray
    cameras: Cameras
    video_serials: tuple[str, ...]
    has_alpha: bool
    height: int
    width: int
    tracking: dict[str, np.ndarray] | None = None
    tracking_file: str | None = None
    pointcloud_files: tuple[tuple[int, Path], ...] = field(default_factory=tuple)
    dataset: "DatasetInputs | None" = None  # a NeRSemble v2 dataset sequence: level, colour correction, files

    @property
    def relative_prefix(self) -> str:
        return f"{self.benchmark}/{self.participant:03d}/sequences/{self.sequence}"

    @property
    def level(self) -> int:
        """The resolution level the frames are stored at (1 = as decoded)."""
        return 1 if self.dataset is None else self.dataset.level

    def video_file(self, serial: str, kind: str) -> Path:
        if self.dataset is not None:
            return self.dataset.videos[serial]
        return self.benchmark_root / catalogue.video_path(self.participant, self.sequence, serial, kind)


def plan_conversion(
    root: Path,
    benchmark: str,
    participants: tuple[int, ...] | None = None,
    sequences: tuple[str, ...] | None = None,
) -> list[SequenceSource]:
    """List and validate the sequences to convert from a fetched folder ROOT (official layout).

    Without ``participants``, every catalogue participant with a folder under ROOT/benchmark is taken.
    Video frame counts are checked against metadata.json and across cameras, before any write.
    """
    catalogue.check_benchmark(benchmark)
    benchmark_root = Path(root) / benchmark
    if not benchmark_root.is_dir():
        raise InputDataError(f"No fetched {benchmark} data under {root}; run `nersemble-zarr fetch {root} {benchmark}`.")
    if participants is None:
        participants = tuple(p for p in catalogue.participants(benchmark) if (benchmark_root / f"{p:03d}").is_dir())
        if not participants:
            raise InputDataError(f"No participant folders under {benchmark_root}; nothing to convert.")
    catalogue.check_participants(benchmark, participants)
    for name in sequences or ():
        catalogue.check_safe_name(name, "sequence")
    if benchmark == "nvs":
        metadata = sources.nvs_timesteps(Path(root))
        return [_plan_nvs(benchmark_root, p, metadata, sequences) for p in participants if _wanted_nvs(p, sequences)]
    counts = sources.mono_frame_counts(Path(root))
    return [
        _plan_mono(benchmark_root, p, s, counts)
        for p in participants
        for s in _mono_sequences_on_disk(benchmark_root, p, sequences)
    ]


def _wanted_nvs(participant: int, sequences: tuple[str, ...] | None) -> bool:
    return sequences is None or catalogue.NVS_SEQUENCES[participant] in sequences


def _plan_nvs(benchmark_root: Path, participant: int, metadata, sequences) -> SequenceSource:
    if participant not in metadata:
        raise InputDataError(f"{benchmark_root / catalogue.METADATA_FILE} has no entry for participant {participant}.")
    sequence, timesteps = metadata[participant]  # the catalogue's sequence: inputs.metadata checked it
    cameras = read_calibration(benchmark_root / catalogue.calibration_path(participant))
    pointclouds = tuple(
        (int(t), benchmark_root / catalogue.pointcloud_path(participant, sequence, int(t)))
        for t in timesteps
        if _present(benchmark_root / catalogue.pointcloud_path(participant, sequence, int(t)))
    )
    for _, path in pointclouds:  # the header only: the points are read while the store is written
        check_pointcloud(path)
    distinct_files([path for _, path in pointclouds], "point cloud")
    return _with_videos(
        benchmark_root, "nvs", participant, sequence, timesteps, cameras, pointcloud_files=pointclouds
    )


def _mono_sequences_on_disk(benchmark_root: Path, participant: int, sequences) -> list[str]:
    known = catalogue.sequences("mono_flame_avatar", participant)
    if sequences is not None:
        unknown = [s for s in sequences if s not in known]
        if unknown:
            raise CatalogueError(f"Unknown mono_flame_avatar sequence {shown(unknown[0])}.")
        wanted = [s for s in known if s in sequences]
    else:
        wanted = list(known)
    folder = benchmark_root / f"{participant:03d}" / "sequences"
    found = [s for s in wanted if (folder / s).is_dir()]
    if sequences is not None and len(found) != len(wanted):
        missing = next(s for s in wanted if s not in found)
        raise InputDataError(f"Sequence {missing} of participant {participant} was not fetched (no folder {folder / missing}).")
    return found


def _plan_mono(benchmark_root: Path, participant: int, sequence: str, counts) -> SequenceSource:
    n_frames = counts.get(participant, {}).get(sequence)
    if n_frames is None:
        raise InputDataError(
            f"{benchmark_root / catalogue.METADATA_FILE} has no frame count for participant {participant}, {sequence}."
        )
    tracking_file = benchmark_root / catalogue.tracking_path(participant, sequence)
    if not tracking_file.is_file():
        older = benchmark_root / catalogue.tracking_path(participant, sequence, catalogue.TRACKING_FILE_V1)
        tracking_file = older if older.is_file() else tracking_file
    tracking = read_tracking(tracking_file)
    if len(tracking["frames"]) != n_frames:
        raise InputDataError(
            f"The tracking file {tracking_file} has {len(tracking['frames'])} timesteps; metadata.json says {n_frames}."
        )
    cameras = read_calibration(benchmark_root / catalogue.calibration_path(participant))
    benchmark_serials = tuple(s for s in catalogue.SERIALS if s in catalogue.submission_serials("mono_flame_avatar"))
    cameras = cameras.subset(tuple(s for s in benchmark_serials if s in cameras.serials))
    return _with_videos(
        benchmark_root, "mono_flame_avatar", participant, sequence, tracking["frames"], cameras,
        tracking=tracking, tracking_file=tracking_file.name,
    )


def _participant_frame_size(benchmark_root: Path, benchmark: str, participant: int) -> tuple[int, int]:
    """(height, width) for a sequence without videos (a mono test sequence): the size of the participant's
    other videos, which share its calibration, else the benchmark's frame size."""
    for video in sorted((benchmark_root / f"{participant:03d}" / "sequences").glob("*/images/cam_*.mp4")):
        info = probe(video)
        return info.height, info.width
    spec = catalogue.SPECS[benchmark]
    return spec.height, spec.width


def _with_videos(benchmark_root, benchmark, participant, sequence, timesteps, cameras, **extra) -> SequenceSource:
    """Find the sequence's videos and check their frame counts and sizes against each other and metadata."""
    _check_calibrated(benchmark_root, benchmark, participant, sequence, cameras)
    image_serials = tuple(
        s for s in cameras.serials if _present(benchmark_root / catalogue.video_path(participant, sequence, s, "images"))
    )
    alpha_serials = tuple(
        s for s in cameras.serials
        if _present(benchmark_root / catalogue.video_path(participant, sequence, s, "alpha_maps"))
    )
    if alpha_serials and alpha_serials != image_serials:
        odd = next(s for s in set(image_serials) ^ set(alpha_serials))
        kind = "alpha_maps" if odd in image_serials else "images"
        missing = benchmark_root / catalogue.video_path(participant, sequence, odd, kind)
        raise InputDataError(f"The video {missing} is missing while its counterpart exists; fetch it.")
    size = None
    videos = [
        benchmark_root / catalogue.video_path(participant, sequence, serial, kind)
        for serial in image_serials for kind in (("images", "alpha_maps") if alpha_serials else ("images",))
    ]
    for path in videos:
        regular_file(path, Origin.local(path, "video"))
    distinct_files(videos, "video")
    for path, info in zip(videos, probe_many(videos)):
        if info.n_frames != len(timesteps):
            raise InputDataError(f"The video {path} has {info.n_frames} frames; metadata.json says {len(timesteps)}.")
        if size is not None and (info.height, info.width) != size:
            raise InputDataError(
                f"The video {path} is {info.width}x{info.height}; other videos of the sequence are "
                f"{size[1]}x{size[0]}."
            )
        size = (info.height, info.width)
    height, width = size or _participant_frame_size(benchmark_root, benchmark, participant)
    return SequenceSource(
        benchmark=benchmark, participant=participant, sequence=sequence, benchmark_root=benchmark_root,
        timesteps=np.asarray(timesteps, dtype=np.int64), cameras=cameras, video_serials=image_serials,
        has_alpha=bool(alpha_serials), height=height, width=width, **extra,
    )


def _check_calibrated(
    benchmark_root: Path, benchmark: str, participant: int, sequence: str, cameras: Cameras
) -> None:
    """Refuse a fetched video whose camera the calibration lacks (it would be dropped without a word)."""
    for serial in catalogue.video_serials(benchmark, sequence):
        if serial in cameras.serials:
            continue
        for kind in ("images", "alpha_maps"):
            video = benchmark_root / catalogue.video_path(participant, sequence, serial, kind)
            if _present(video):
                calibration = benchmark_root / catalogue.calibration_path(participant)
                raise InputDataError(
                    f"The calibration {calibration} has no camera {serial}, whose video {video} was fetched; "
                    "fetch the calibration again."
                )


def _present(path: Path) -> bool:
    """A file is there (a symbolic link counts, so that it is refused rather than taken as missing)."""
    return path.is_file() or path.is_symlink()
