"""What the synthetic benchmark contains: participants, cameras, sequence lengths, resolution and seed."""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass

from .. import catalogue
from ..errors import ConfigError

# Original capture frames kept by the benchmark: every FRAME_STRIDE-th frame from FRAME_OFFSET, so timestep
# labels (metadata "timesteps", tracking "frames", point cloud names) are not simply 0..N-1. Frame 0 exists,
# as on the real server, where the official downloader fetches frame_00000.pcd by default.
FRAME_OFFSET = 0
FRAME_STRIDE = 3
# Size of a synthetic SVFR image at scale 1: our choice (a quarter of a NeRSemble camera's 2200x3208), since the
# catalogue holds no size for the real images.
SVFR_WIDTH, SVFR_HEIGHT = 550, 802
TOUR_SVFR_PARTICIPANTS = (17, 215)  # the SVFR part of the tour size: 33 images


def even_size(length: int, scale: float) -> int:
    """``length * scale`` rounded to the nearest even number (H.264 with yuv420p needs even sizes), at least 16."""
    return max(16, 2 * round(length * scale / 2))


def mono_real_length(sequence: str) -> int:
    """A plausible real length for a mono sequence (the catalogue does not know them): 200 to 399 frames."""
    return 200 + zlib.crc32(sequence.encode()) % 200


@dataclass(frozen=True)
class SyntheticConfig:
    """Which parts of the benchmark to synthesise, at what size, from which seed.

    ``scale`` multiplies the real frame sizes (1100x1604 and 512x512); ``n_frames`` caps every sequence
    (None: the real length). Only the listed participants, cameras and sequences are written.
    """

    seed: int = 0
    scale: float = 1.0
    n_frames: int | None = None
    nvs_participants: tuple[int, ...] = tuple(catalogue.NVS_SEQUENCES)
    nvs_serials: tuple[str, ...] = catalogue.NVS_TRAIN_SERIALS
    mono_participants: tuple[int, ...] = catalogue.MONO_PARTICIPANTS
    mono_train_sequences: tuple[str, ...] = catalogue.MONO_TRAIN_SEQUENCES
    mono_test_sequences: tuple[str, ...] = catalogue.MONO_TEST_SEQUENCES
    n_points: int = 30_000
    svfr_participants: tuple[int, ...] = catalogue.SVFR_PARTICIPANTS
    svfr_keys_per_participant: int | None = None  # None: every image key of the catalogue

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"Synthetic seed {self.seed!r} is invalid; expected a non-negative integer.")
        if not self.scale > 0:
            raise ConfigError(f"Synthetic scale {self.scale!r} is invalid; expected a positive number.")
        if self.n_frames is not None and self.n_frames < 1:
            raise ConfigError(f"Synthetic n_frames {self.n_frames!r} is invalid; expected at least 1 or None.")
        if self.n_points < 1:
            raise ConfigError(f"Synthetic n_points {self.n_points!r} is invalid; expected at least 1.")
        catalogue.check_participants("nvs", self.nvs_participants)
        catalogue.check_participants("mono_flame_avatar", self.mono_participants)
        catalogue.check_participants(catalogue.SVFR, self.svfr_participants)
        if self.svfr_keys_per_participant is not None and self.svfr_keys_per_participant < 1:
            raise ConfigError(
                f"Synthetic svfr_keys_per_participant {self.svfr_keys_per_participant!r} is invalid; "
                "expected at least 1 or None."
            )
        for serial in self.nvs_serials:
            if serial not in catalogue.NVS_TRAIN_SERIALS:
                raise ConfigError(
                    f"Synthetic NVS camera {serial!r} is not a train camera; the server only has videos of "
                    f"{', '.join(catalogue.NVS_TRAIN_SERIALS)}."
                )
        for sequence in self.mono_train_sequences:
            if sequence not in catalogue.MONO_TRAIN_SEQUENCES:
                raise ConfigError(f"Synthetic mono train sequence {sequence!r} is not in the catalogue.")
        for sequence in self.mono_test_sequences:
            if sequence not in catalogue.MONO_TEST_SEQUENCES:
                raise ConfigError(f"Synthetic mono test sequence {sequence!r} is not in the catalogue.")

    @classmethod
    def tiny(cls, seed: int = 0) -> "SyntheticConfig":
        """A few seconds' worth for tests: NVS 388 with its 13 train cameras, mono 393 with one train and one
        test sequence, 6 frames each, 1/10 of the real resolution."""
        return cls(
            seed=seed,
            scale=0.1,
            n_frames=6,
            nvs_participants=(388,),
            nvs_serials=catalogue.NVS_TRAIN_SERIALS,
            mono_participants=(393,),
            mono_train_sequences=("EXP-1-head",),
            mono_test_sequences=("FREE",),
            n_points=3_000,
            svfr_participants=(),
        )

    @classmethod
    def tour(cls, seed: int = 0) -> "SyntheticConfig":
        """What ``nersemble-zarr synthetic OUT`` writes for the README tour: ``tiny`` plus every SVFR image of
        participants 17 and 215 (those of ``tiny_svfr``), so each benchmark the tour fetches is served."""
        return dataclasses.replace(cls.tiny(seed), svfr_participants=TOUR_SVFR_PARTICIPANTS)

    @classmethod
    def tiny_svfr(cls, seed: int = 0) -> "SyntheticConfig":
        """Only SVFR, for tests: every image of participants 17 (20 images) and 215 (13), at 1/10 of the size."""
        return cls(seed=seed, scale=0.1, nvs_participants=(), mono_participants=(), svfr_participants=TOUR_SVFR_PARTICIPANTS)

    @classmethod
    def full(cls, seed: int = 0) -> "SyntheticConfig":
        """The whole benchmark at real resolution and real (NVS) or plausible (mono) sequence lengths."""
        return cls(seed=seed)

    def frame_size(self, benchmark: str) -> tuple[int, int]:
        """(width, height) of the benchmark's frames (svfr: images) at this config's scale."""
        if benchmark == catalogue.SVFR:
            return even_size(SVFR_WIDTH, self.scale), even_size(SVFR_HEIGHT, self.scale)
        spec = catalogue.SPECS[catalogue.check_benchmark(benchmark)]
        return even_size(spec.width, self.scale), even_size(spec.height, self.scale)

    def n_frames_of(self, benchmark: str, participant: int, sequence: str) -> int:
        """Number of frames of one sequence: the real (or plausible) length, capped by ``n_frames``."""
        if catalogue.check_benchmark(benchmark) == "nvs":
            real = catalogue.NVS_N_FRAMES[participant]
        else:
            real = mono_real_length(sequence)
        return real if self.n_frames is None else min(real, self.n_frames)

    def sequences_of(self, benchmark: str, participant: int) -> tuple[str, ...]:
        """The sequences generated for a participant (mono: train then test)."""
        if catalogue.check_benchmark(benchmark) == "nvs":
            return (catalogue.NVS_SEQUENCES[participant],)
        return self.mono_train_sequences + self.mono_test_sequences

    def svfr_keys_of(self, participant: int) -> tuple[catalogue.ImageKey, ...]:
        """The SVFR image keys generated for a participant (the catalogue's, in order, capped)."""
        keys = catalogue.svfr_image_keys()[participant]
        return keys if self.svfr_keys_per_participant is None else keys[: self.svfr_keys_per_participant]

    def participants_of(self, benchmark: str) -> tuple[int, ...]:
        """The participants generated for a benchmark."""
        if benchmark == catalogue.SVFR:
            return self.svfr_participants
        if catalogue.check_benchmark(benchmark) == "nvs":
            return self.nvs_participants
        return self.mono_participants

    def video_serials_of(self, benchmark: str, sequence: str) -> tuple[str, ...]:
        """Cameras whose videos are written for a sequence (never the hold-out ones)."""
        if benchmark == "nvs":
            return self.nvs_serials
        return catalogue.video_serials(benchmark, sequence)


SIZES = {"tiny": SyntheticConfig.tour, "tiny-svfr": SyntheticConfig.tiny_svfr, "full": SyntheticConfig.full}


def config_of_size(size: str, seed: int = 0) -> SyntheticConfig:
    """The config of ``nersemble-zarr synthetic --size SIZE --seed SEED`` (tiny, tiny-svfr or full)."""
    if size not in SIZES:
        raise ConfigError(f"Synthetic size {size!r} is unknown; expected one of {', '.join(SIZES)}.")
    return SIZES[size](seed)
