"""The benchmark sources: ``nvs`` and ``mono_flame_avatar`` (videos, listed in ``{benchmark}/metadata.json``) and
``svfr`` (one image per key, listed in the package's catalogue). Their names, participants and layout are the
catalogue's facts (``nersemble_zarr.catalogue``); here they become ``Source`` descriptions.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import catalogue
from ..errors import CatalogueError, shown
from ..inputs import metadata
from ..inputs.origin import Origin
from .base import Listing, Selection, Source


class VideoBenchmark(Source):
    """A multi-view video benchmark: calibration per participant; videos, alpha videos, point clouds and
    FLAME tracking per sequence."""

    index_files = (catalogue.METADATA_FILE,)

    def __init__(self, name: str) -> None:
        self.name = self.url_path = name
        self.description = f"the {name} benchmark"
        self.assets = catalogue.ASSETS[name]
        self.default_assets = catalogue.DEFAULT_ASSETS[name]

    def check_participants(self, requested: tuple[int, ...]) -> tuple[int, ...]:
        return catalogue.check_participants(self.name, requested)

    def listing(self, index: Mapping[str, bytes]) -> Listing:
        raw = index[catalogue.METADATA_FILE]
        index_name = f"the server's {self.name}/{catalogue.METADATA_FILE}"
        origin = Origin(index_name[0].upper() + index_name[1:], "delete it and fetch again")
        if self.name == "nvs":
            parsed = metadata.parse_nvs(raw, origin)
            return Listing({p: (name,) for p, (name, _) in parsed.items()},
                           {p: timesteps for p, (_, timesteps) in parsed.items()}, index_name)
        counts = metadata.parse_mono(raw, origin)
        return Listing({p: tuple(sequences) for p, sequences in counts.items()}, {}, index_name)

    def plan_paths(self, selection: Selection, listing: Listing) -> list[str]:
        paths: list[str] = []
        for participant, sequences in self.chosen_sequences(selection, listing):
            if "calibration" in selection.assets:
                paths.append(catalogue.calibration_path(participant))
            for sequence in sequences:
                paths += self._sequence_paths(selection, listing, participant, sequence)
        return list(dict.fromkeys(paths))

    def _sequence_paths(self, selection: Selection, listing: Listing, participant: int, sequence: str) -> list[str]:
        assets = selection.assets
        serials = self.chosen_cameras(selection, catalogue.video_serials(self.name, sequence))
        paths = [catalogue.video_path(participant, sequence, serial, kind)
                 for kind in ("images", "alpha_maps") if kind in assets for serial in serials]
        if "pointclouds" in assets:
            paths += [catalogue.pointcloud_path(participant, sequence, t)
                      for t in _pointcloud_timesteps(selection, listing, participant)]
        if "flame2023_tracking" in assets:
            paths.append(catalogue.tracking_path(participant, sequence, catalogue.TRACKING_FILE))
        if "flame2023_tracking_v1" in assets:
            paths.append(catalogue.tracking_path(participant, sequence, catalogue.TRACKING_FILE_V1))
        return paths


def _pointcloud_timesteps(selection: Selection, listing: Listing, participant: int) -> tuple[int, ...]:
    """Timesteps of the requested point clouds: frame numbers are timestep labels, as in the official tool."""
    timesteps = listing.timesteps.get(participant, ())
    if selection.pointcloud_frames == "all":
        return timesteps
    for frame in selection.pointcloud_frames:
        if frame not in timesteps:
            raise CatalogueError(
                f"Point cloud frame {shown(frame)} is not a timestep of participant {participant} in "
                f"{listing.index_name} (its timesteps run {timesteps[0]}, {timesteps[1]}, ... {timesteps[-1]})."
                if len(timesteps) > 1 else
                f"Point cloud frame {shown(frame)} is not a timestep of participant {participant} in "
                f"{listing.index_name}."
            )
    return tuple(selection.pointcloud_frames)


class SvfrBenchmark(Source):
    """Single-view face reconstruction: one ``rgb.png`` per image key; the keys are the package's catalogue."""

    name = url_path = catalogue.SVFR
    description = "the svfr benchmark"
    assets = default_assets = catalogue.ASSETS[catalogue.SVFR]

    def check_participants(self, requested: tuple[int, ...]) -> tuple[int, ...]:
        return catalogue.check_participants(self.name, requested)

    def listing(self, index: Mapping[str, bytes]) -> Listing:
        keys = catalogue.svfr_image_keys()
        return Listing({p: catalogue.sequences(self.name, p) for p in keys}, {}, "the SVFR image keys")

    def plan_paths(self, selection: Selection, listing: Listing) -> list[str]:
        keys = catalogue.svfr_image_keys()
        return [
            catalogue.svfr_image_path(participant, key)
            for participant, sequences in self.chosen_sequences(selection, listing)
            for key in keys[participant]
            if key.sequence in sequences and (selection.cameras is None or key.serial in selection.cameras)
        ]
