"""Which files to fetch: validating a request, and turning it into relative paths below ``{URL}/{benchmark}/``.

Nothing here does I/O. Paths are built only from catalogue names; ``local_path`` refuses anything that
could land outside ``ROOT/{benchmark}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Sequence, Union

from .. import catalogue
from ..errors import CatalogueError, ConfigError, shown
from .metadata import ServerMetadata

PointcloudFrames = Union[Literal["all"], Sequence[int], int]

_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+.\-]*$")


@dataclass(frozen=True)
class FetchRequest:
    """A validated request: benchmark, participants (None = all on the server), assets, point cloud frames.

    Point cloud frames are positions in a sequence (0 = its first frame), turned into timesteps, and so
    into ``frame_{timestep:05d}.pcd`` names, by the server's metadata.json.
    """

    benchmark: str
    participants: tuple[int, ...] | None
    assets: tuple[str, ...]
    pointcloud_frames: tuple[int, ...] | Literal["all"]


def make_request(
    benchmark: str,
    participants: Iterable[int] | None = None,
    assets: Iterable[str] | str | None = None,
    pointcloud_frames: PointcloudFrames = (0,),
) -> FetchRequest:
    """Check every name against the catalogue (no I/O); unknown names raise CatalogueError."""
    catalogue.check_benchmark(benchmark, catalogue.ALL_BENCHMARKS)
    chosen = None if participants is None else catalogue.check_participants(benchmark, _as_ints(participants))
    return FetchRequest(benchmark, chosen, _check_assets(benchmark, assets), _check_frames(pointcloud_frames))


def _as_ints(participants: Iterable[int]) -> tuple[int, ...]:
    values = tuple(participants)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CatalogueError(f"Participant id {shown(value)} is not an integer id such as 388.")
    return values


def _check_assets(benchmark: str, assets: Iterable[str] | str | None) -> tuple[str, ...]:
    if assets is None:
        return catalogue.DEFAULT_ASSETS[benchmark]
    if assets == "all":
        return catalogue.ASSETS[benchmark]
    names = (assets,) if isinstance(assets, str) else tuple(assets)
    known = catalogue.ASSETS[benchmark]
    for name in names:
        if name not in known:
            raise CatalogueError(
                f"Unknown asset {shown(name)} for benchmark {benchmark!r}; expected one of {', '.join(known)} or 'all'."
            )
    if not names:
        raise CatalogueError(f"No assets chosen for benchmark {benchmark!r}; expected some of {', '.join(known)}.")
    return tuple(dict.fromkeys(names))


def _check_frames(frames: PointcloudFrames) -> tuple[int, ...] | Literal["all"]:
    if frames == "all":
        return "all"
    values = (frames,) if isinstance(frames, int) else tuple(frames)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(
                f"Point cloud frame {shown(value)} is not a non-negative frame number; use e.g. 0, '0,3,6' or 'all'."
            )
    return tuple(dict.fromkeys(values))


def plan_paths(request: FetchRequest, metadata: ServerMetadata | None) -> list[str]:
    """Relative paths (below the benchmark folder) of every file the request covers, in a stable order.

    SVFR has no metadata.json (``metadata`` is None): its paths come from the catalogue's image keys.
    """
    benchmark = request.benchmark
    if benchmark == catalogue.SVFR:
        return svfr_paths(request.participants or catalogue.SVFR_PARTICIPANTS)
    on_server = metadata.sequences
    chosen = request.participants or tuple(p for p in catalogue.participants(benchmark) if p in on_server)
    for participant in chosen:
        if participant not in on_server:
            raise CatalogueError(
                f"Participant {participant} is not listed in the server's {benchmark}/metadata.json "
                f"(it lists {', '.join(str(p) for p in on_server) or 'none'})."
            )
    paths: list[str] = []
    for participant in chosen:
        if "calibration" in request.assets:
            paths.append(catalogue.calibration_path(participant))
        for sequence in on_server[participant]:
            paths += _sequence_paths(request, metadata, participant, sequence)
    return list(dict.fromkeys(paths))


def svfr_paths(participants: Iterable[int]) -> list[str]:
    """``{p:03d}/{sequence}_{timestep}_{serial}/rgb.png`` of every image key of the participants."""
    keys = catalogue.svfr_image_keys()
    return [catalogue.svfr_image_path(p, key) for p in participants for key in keys[p]]


def _sequence_paths(request: FetchRequest, metadata: ServerMetadata, participant: int, sequence: str) -> list[str]:
    benchmark, assets = request.benchmark, request.assets
    paths = [
        catalogue.video_path(participant, sequence, serial, kind)
        for kind in ("images", "alpha_maps") if kind in assets
        for serial in catalogue.video_serials(benchmark, sequence)
    ]
    if "pointclouds" in assets:
        paths += [catalogue.pointcloud_path(participant, sequence, t) for t in _frames(request, metadata, participant)]
    if "flame2023_tracking" in assets:
        paths.append(catalogue.tracking_path(participant, sequence, catalogue.TRACKING_FILE))
    if "flame2023_tracking_v1" in assets:
        paths.append(catalogue.tracking_path(participant, sequence, catalogue.TRACKING_FILE_V1))
    return paths


def _frames(request: FetchRequest, metadata: ServerMetadata, participant: int) -> tuple[int, ...]:
    """Timesteps of the requested point clouds: frame numbers are timestep labels, as in the official tool."""
    timesteps = metadata.timesteps.get(participant, ())
    if request.pointcloud_frames == "all":
        return timesteps
    for frame in request.pointcloud_frames:
        if frame not in timesteps:
            raise CatalogueError(
                f"Point cloud frame {shown(frame)} is not a timestep of participant {participant} in the server's "
                f"nvs/metadata.json (its timesteps run {timesteps[0]}, {timesteps[1]}, ... {timesteps[-1]})."
                if len(timesteps) > 1 else
                f"Point cloud frame {shown(frame)} is not a timestep of participant {participant} in nvs/metadata.json."
            )
    return tuple(request.pointcloud_frames)


def local_path(root: str | Path, benchmark: str, relative: str) -> Path:
    """``ROOT/{benchmark}/{relative}``, refusing any path part that could escape that folder.

    ``ROOT/{benchmark}`` itself may be a link (to another disk); no folder below it may be. The final name
    is not resolved: a link there is replaced by the download, never followed.
    """
    catalogue.check_benchmark(benchmark, catalogue.ALL_BENCHMARKS)
    parts = relative.split("/")
    if not all(_SAFE_PART.match(part) for part in parts):
        raise CatalogueError(f"Refusing unsafe relative path {shown(relative)}.")
    base = (Path(root) / benchmark).resolve()
    folder = base.joinpath(*parts[:-1])
    if folder.resolve() != folder:
        raise CatalogueError(f"Refusing relative path {shown(relative)}: a folder on its way below {base} is a link.")
    return folder / parts[-1]
