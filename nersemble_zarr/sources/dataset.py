"""The NeRSemble v2 dataset as a source: 425 participants, their sequences as 16 mp4 videos each, calibration,
colour calibration and one picture of the empty studio per camera, at the root of its own access URL
(``NERSEMBLE_DATA_URL``), in the official ``nersemble-data`` kit's layout, which the local copy keeps.

``metadata_sequences.csv`` is the authority for names: participants, and the sequences each one has (the kit's
own list of sequence names disagrees with the server on at least one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import catalogue
from ..errors import CatalogueError
from ..inputs.dataset_index import BACKGROUND, PARTICIPANTS_CSV, SEQUENCES_CSV, parse_sequences_csv
from ..inputs.origin import Origin
from .base import DATASET_ACCESS, Listing, Selection, Source

FPS = 73  # frames per second of every video
WIDTH, HEIGHT = 2200, 3208  # full-resolution frame size, the size the shared intrinsics are for


# ---------------------------------------------------------------- relative paths (the official kit's)
def calibration_path(participant: int) -> str:
    """The participant's camera calibration: ``world_2_cam`` per serial and one shared ``intrinsics``."""
    return f"{participant:03d}/calibration/camera_params.json"


def colour_calibration_path(participant: int) -> str:
    """The participant's colour calibration: a 3 x terms matrix per serial."""
    return f"{participant:03d}/calibration/color_calibration.json"


def video_path(participant: int, sequence: str, serial: str) -> str:
    """One camera's video of a sequence."""
    return f"{participant:03d}/sequences/{catalogue.check_safe_name(sequence, 'sequence')}/images/cam_{serial}.mp4"


def background_path(participant: int, serial: str) -> str:
    """One camera's picture of the empty studio."""
    return f"{participant:03d}/sequences/{BACKGROUND}/image_{serial}.jpg"


@dataclass(frozen=True)
class DatasetListing(Listing):
    """The dataset's listing, plus the participants whose BACKGROUND pictures exist."""

    backgrounds: frozenset[int] = frozenset()


class Dataset(Source):
    """The NeRSemble v2 dataset."""

    name = "dataset"
    description = "the NeRSemble v2 dataset"
    access = DATASET_ACCESS
    url_path = ""
    assets = default_assets = ("calibration", "color_calibration", "images", "backgrounds")
    index_files = (PARTICIPANTS_CSV, SEQUENCES_CSV)

    def check_sequence(self, name: str) -> str:
        """A safe name, and not ``BACKGROUND`` (a column of the CSV, which the official kit lists as a sequence):
        its pictures are the ``backgrounds`` asset."""
        if name == BACKGROUND:
            raise CatalogueError(f"{BACKGROUND} is not a sequence of videos: its pictures are the asset 'backgrounds' "
                                 "(-a backgrounds), which is fetched by default.")
        return super().check_sequence(name)

    def listing(self, index: Mapping[str, bytes]) -> DatasetListing:
        index_name = f"the server's {SEQUENCES_CSV}"
        origin = Origin(f"The server's {SEQUENCES_CSV}", "check the access URL, or delete it and fetch again")
        sequences, backgrounds = parse_sequences_csv(index[SEQUENCES_CSV], origin)
        return DatasetListing(sequences, {}, index_name, backgrounds)

    def plan_paths(self, selection: Selection, listing: Listing) -> list[str]:
        assets = selection.assets
        serials = self.chosen_cameras(selection, catalogue.SERIALS)
        paths: list[str] = []
        for participant, sequences in self.chosen_sequences(selection, listing):
            if "calibration" in assets:
                paths.append(calibration_path(participant))
            if "color_calibration" in assets:
                paths.append(colour_calibration_path(participant))
            if "images" in assets:
                paths += [video_path(participant, s, serial) for s in sequences for serial in serials]
            if "backgrounds" in assets and participant in getattr(listing, "backgrounds", ()):
                paths += [background_path(participant, serial) for serial in serials]
        return paths
