"""What the synthetic NeRSemble v2 dataset contains: participants, sequences, cameras, frame size and count."""

from __future__ import annotations

from dataclasses import dataclass

from .. import catalogue
from ..errors import ConfigError
from ..sources.dataset import FPS as DATASET_FPS
from ..sources.dataset import Dataset
from ..sources.dataset import HEIGHT as DATASET_HEIGHT
from ..sources.dataset import WIDTH as DATASET_WIDTH
from .config import even_size

# Where ``nersemble-zarr synthetic OUT --dataset`` writes the dataset (OUT/dataset, as fetch ROOT dataset does),
# and below which ``serve-synthetic OUT`` serves it.
DATASET_FOLDER = Dataset.name
# Colour calibration: the number of terms (columns) of a participant's matrices, alternating over the participants
# so that a reader meets two kinds: a plain 3x3 matrix and the augmented 3x10 polynomial of Cheung et al. (2004).
COLOUR_TERMS = (3, 10)


@dataclass(frozen=True)
class SyntheticDatasetConfig:
    """Which part of the dataset to synthesise, at what size, from which seed.

    ``scale`` multiplies the real 2200x3208 frames (rounded to even sizes); ``sequences`` are the columns of
    ``metadata_sequences.csv``, of which each participant has most (cells ``x`` or ``m``) but not all.
    """

    seed: int = 0
    scale: float = 0.05
    n_frames: int = 4
    participants: tuple[int, ...] = (17, 18)
    sequences: tuple[str, ...] = ("EXP-1-head", "EMO-1-shout+laugh", "SEN-07-fond_note_friend")
    serials: tuple[str, ...] = ("222200037", "222200038", "222200039")

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"Synthetic dataset seed {self.seed!r} is invalid; expected a non-negative integer.")
        if not 0 < self.scale <= 1:
            raise ConfigError(f"Synthetic dataset scale {self.scale!r} is invalid; expected a number in (0, 1].")
        if not isinstance(self.n_frames, int) or self.n_frames < 1:
            raise ConfigError(f"Synthetic dataset n_frames {self.n_frames!r} is invalid; expected at least 1.")
        for participant in self.participants:
            if not isinstance(participant, int) or not 0 <= participant <= 999:
                raise ConfigError(f"Synthetic dataset participant {participant!r} is invalid; expected 0 to 999.")
        if len(set(self.participants)) != len(self.participants) or not self.participants:
            raise ConfigError("Synthetic dataset participants must be distinct and at least one.")
        for sequence in self.sequences:
            if sequence in ("ID", "wears_glasses", "BACKGROUND") or not sequence or "/" in sequence:
                raise ConfigError(f"Synthetic dataset sequence {sequence!r} is not a valid sequence name.")
        if not self.serials or not set(self.serials) <= set(catalogue.SERIALS):
            raise ConfigError(f"Synthetic dataset serials {self.serials!r} are invalid; expected some of the 16 "
                              "NeRSemble camera serials.")

    @classmethod
    def full_size(cls, seed: int = 0, **changes) -> "SyntheticDatasetConfig":
        """Frames at the real 2200x3208; other fields as given (default: the small selection)."""
        return cls(seed=seed, scale=1.0, **changes)

    @classmethod
    def chosen(cls, seed: int = 0, *, full_size: bool = False, participants: tuple[int, ...] = (),
               n_frames: int | None = None) -> "SyntheticDatasetConfig":
        """The small selection with what ``nersemble-zarr synthetic --dataset`` was given: real-size frames,
        other participants (empty: the default ones), another number of frames (None: the default)."""
        changes: dict = {"seed": seed}
        if participants:
            changes["participants"] = tuple(int(participant) for participant in participants)
        if n_frames is not None:
            changes["n_frames"] = n_frames
        return cls.full_size(**changes) if full_size else cls(**changes)

    def frame_size(self) -> tuple[int, int]:
        """(width, height) of every frame at this config's scale."""
        return even_size(DATASET_WIDTH, self.scale), even_size(DATASET_HEIGHT, self.scale)

    def cell(self, participant: int, sequence: str) -> str:
        """The ``metadata_sequences.csv`` cell of a participant's sequence: ``x``, ``m`` or empty (absent).

        Fixed by position, so any selection of at least two participants and three sequences has all three."""
        shift = (self.participants.index(participant) + self.sequences.index(sequence)) % 4
        return {2: "m", 3: ""}.get(shift, "x")

    def sequences_of(self, participant: int) -> tuple[str, ...]:
        """The sequences a participant has (a cell ``x`` or ``m``), in column order."""
        return tuple(s for s in self.sequences if self.cell(participant, s))

    def colour_terms(self, participant: int) -> int:
        """Number of terms (columns) of the participant's colour calibration matrices."""
        return COLOUR_TERMS[self.participants.index(participant) % len(COLOUR_TERMS)]

    def wears_glasses(self, participant: int) -> bool:
        """Whether the participant wears glasses (the CSV's ``wears_glasses`` column)."""
        return self.participants.index(participant) % 3 == 1
