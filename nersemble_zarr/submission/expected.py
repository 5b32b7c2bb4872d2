"""What a submission must contain: the videos of a benchmark, their frame counts, size, rate and codec.

Frame counts come from the benchmark's metadata.json (a fetched folder), a converted store (the length of
each sequence group's ``timestep`` coordinate), an explicit mapping, or, for NVS only, the catalogue; the first
two also give each sequence's original frame indices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .. import catalogue, schema
from ..errors import SubmissionError
from ..units import listed

VideoKey = tuple[int, str, str]  # (participant, sequence, serial)
FrameCounts = Mapping[tuple[int, str], int]

CODEC = "h264"
PIX_FMT = "yuv420p"


@dataclass(frozen=True)
class ExpectedVideo:
    """One video of a submission; ``n_frames`` is None when no frame count is known (partial checks only).
    ``timesteps`` are the sequence's original frame indices where the source of the counts holds them."""

    participant: int
    sequence: str
    serial: str
    n_frames: int | None
    timesteps: tuple[int, ...] | None = None

    @property
    def key(self) -> VideoKey:
        return (self.participant, self.sequence, self.serial)

    @property
    def entry(self) -> str:
        """Path of the video inside the zip, e.g. ``388/GLASSES/cam_222200046.mp4``."""
        return catalogue.submission_entry(self.participant, self.sequence, self.serial)


@dataclass(frozen=True)
class SubmissionSpec:
    """Every video a complete submission holds, with the frame size (width x height) and rate they share."""

    benchmark: str
    width: int
    height: int
    fps: float
    videos: tuple[ExpectedVideo, ...]
    counts_from: str = "the benchmark metadata"  # where the frame counts come from, for messages

    def by_key(self) -> dict[VideoKey, ExpectedVideo]:
        return {video.key: video for video in self.videos}

    def by_entry(self) -> dict[str, ExpectedVideo]:
        return {video.entry: video for video in self.videos}


def expected_submission(
    benchmark: str,
    *,
    root: str | os.PathLike | None = None,
    store=None,
    frame_counts: FrameCounts | None = None,
    resolution: tuple[int, int] | None = None,
    partial: bool = False,
) -> SubmissionSpec:
    """The videos a ``benchmark`` submission must hold, with frame counts from one of the sources.

    ``root`` is a fetched folder (``ROOT/{benchmark}/metadata.json``), ``store`` a converted store path or
    DataTree, ``frame_counts`` a mapping ``(participant, sequence) -> n``; without any of them NVS uses the
    catalogue's counts. The frame size is ``resolution`` = (width, height) if given, else that of the
    benchmark's frames in ``root`` (its first video) or ``store`` (its first sequence), else the benchmark's
    (1100x1604 nvs, 512x512 mono): on the real benchmark these agree, on the synthetic one the folder's rules.
    With ``partial`` a sequence without a known count is allowed (its videos must then not be submitted).
    """
    catalogue.check_benchmark(benchmark)
    count_sources = (("root", root), ("store", store), ("frame_counts", frame_counts))
    given = [name for name, value in count_sources if value is not None]
    if len(given) > 1:
        raise SubmissionError(f"Give frame counts from one source only, not {' and '.join(given)}.")
    timesteps: dict[tuple[int, str], tuple[int, ...]] = {}
    if frame_counts is not None:
        counts = {(int(p), str(s)): int(n) for (p, s), n in frame_counts.items()}
    elif root is not None or store is not None:
        timesteps = _timesteps_from_metadata(benchmark, Path(root)) if root is not None else \
            _timesteps_from_store(benchmark, store)
        counts = {key: len(values) for key, values in timesteps.items()}
    elif benchmark == "nvs":
        counts = {(p, s): catalogue.NVS_N_FRAMES[p] for p, s in catalogue.NVS_SEQUENCES.items()}
    else:
        raise SubmissionError(
            "The frame counts of mono_flame_avatar videos come from its metadata.json; "
            "pass the fetched folder (--root) or a converted store (--store)."
        )
    sequences = catalogue.submission_sequences(benchmark)
    unknown = [f"{p:03d}/{s}" for p, s in sequences if (p, s) not in counts]
    if unknown and not partial:
        raise SubmissionError(
            f"No frame count is known for {len(unknown)} {benchmark} sequence(s) ({listed(unknown)}); "
            "use complete metadata or a store holding them, or allow a subset with --partial."
        )
    bad = [f"{p:03d}/{s}={counts[p, s]}" for p, s in sequences if counts.get((p, s), 1) < 1]
    if bad:
        raise SubmissionError(f"Frame counts must be at least 1; found {', '.join(bad)}.")
    spec = catalogue.SPECS[benchmark]
    if resolution is None:
        resolution = _frame_size_of(benchmark, root, store) or (spec.width, spec.height)
    width, height = resolution
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise SubmissionError(f"Resolution {width}x{height} is invalid; H.264 yuv420p needs even sizes >= 2.")
    videos = tuple(
        ExpectedVideo(p, s, serial, counts.get((p, s)), timesteps.get((p, s)))
        for p, s in sequences
        for serial in catalogue.submission_serials(benchmark)
    )
    source = "the catalogue (no --root or --store given)" if not given else \
        "the store" if given == ["store"] else "the benchmark metadata"
    return SubmissionSpec(benchmark, int(width), int(height), spec.fps, videos, source)


def _timesteps_from_metadata(benchmark: str, root: Path) -> dict[tuple[int, str], tuple[int, ...]]:
    """Original frame indices from ``ROOT/{benchmark}/metadata.json`` (also accepts ROOT/{benchmark} itself);
    a mono sequence's are 0..n-1."""
    from ..convert.sources import mono_frame_counts, nvs_timesteps

    if root.name == benchmark and not (root / benchmark).is_dir():
        root = root.parent
    if benchmark == "nvs":
        return {(p, name): tuple(int(t) for t in timesteps) for p, (name, timesteps) in nvs_timesteps(root).items()}
    return {(p, s): tuple(range(n)) for p, sequences in mono_frame_counts(root).items() for s, n in sequences.items()}


def _timesteps_from_store(benchmark: str, store) -> dict[tuple[int, str], tuple[int, ...]]:
    """Original frame indices from a converted store: each sequence group's ``timestep`` coordinate."""
    if isinstance(store, (str, os.PathLike)):
        from .. import storage

        root = storage.open_group(store)

        def values(group: str) -> tuple[int, ...] | None:
            try:
                return tuple(int(t) for t in root[f"{group}/{schema.TIMESTEP}"][:])
            except KeyError:
                return None
    else:

        def values(group: str) -> tuple[int, ...] | None:
            try:
                return tuple(int(t) for t in store[group][schema.TIMESTEP].values)
            except KeyError:
                return None

    found = {}
    for participant, sequence in catalogue.submission_sequences(benchmark):
        timesteps = values(schema.sequence_group(benchmark, participant, sequence))
        if timesteps is not None:
            found[participant, sequence] = timesteps
    return found



def _frame_size_of(benchmark: str, root, store) -> tuple[int, int] | None:
    """(width, height) of the benchmark's frames in a fetched folder (its first video) or a converted store
    (its first sequence with images); None when there is neither."""
    if root is not None:
        root = Path(root)
        if root.name == benchmark and not (root / benchmark).is_dir():
            root = root.parent
        for participant in catalogue.participants(benchmark):
            folder = root / benchmark / str(participant) / "sequences"
            videos = sorted(folder.glob("*/images/cam_*.mp4")) if folder.is_dir() else []
            if videos:
                from ..video import probe

                info = probe(videos[0])
                return info.width, info.height
        return None
    if isinstance(store, (str, os.PathLike)):
        from .. import storage

        group = storage.open_group(store)
        for participant, sequence in catalogue.submission_sequences(benchmark) + _train_sequences(benchmark):
            try:
                shape = group[f"{schema.sequence_group(benchmark, participant, sequence)}/{schema.IMAGES}"].shape
            except KeyError:
                continue
            return int(shape[-2]), int(shape[-3])
        return None
    if store is not None:
        for node in store.subtree:
            if node.path.strip("/").startswith(f"{benchmark}/") and schema.IMAGES in node.dataset:
                return int(node.dataset.sizes[schema.X]), int(node.dataset.sizes[schema.Y])
    return None


def _train_sequences(benchmark: str) -> list[tuple[int, str]]:
    """The benchmark's sequences that are not submitted (mono train sequences), where a store keeps frames."""
    submitted = set(catalogue.submission_sequences(benchmark))
    return [(p, s) for p in catalogue.participants(benchmark) for s in catalogue.sequences(benchmark, p)
            if (p, s) not in submitted]
