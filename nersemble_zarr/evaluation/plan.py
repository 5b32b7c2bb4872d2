"""Match predictions to the store's ground truth: which videos and which frames of each to evaluate."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from .. import catalogue, schema
from ..errors import EvaluationError, SubmissionError
from ..submission.expected import ExpectedVideo, SubmissionSpec
from ..submission.predictions import check_source, find_videos
from ..submission.sources import FrameSource
from .ground_truth import StoredSequence, stored_sequences
from .splits import ValidationSplit


@dataclass(frozen=True)
class VideoTask:
    """One predicted video and the stored positions (along ``timestep``) of the frames to evaluate."""

    store: str
    benchmark: str
    participant: int
    sequence: str
    serial: str
    source: FrameSource
    positions: tuple[int, ...]
    timesteps: tuple[int, ...]  # original frame indices of ``positions``
    has_alpha: bool
    fps: float                  # frame rate of the evaluated frames (the benchmark's, over ``every``)

    @property
    def name(self) -> str:
        return self.source.video


def plan_evaluation(
    predictions: Any,
    store: str | os.PathLike,
    benchmark: str,
    *,
    every: int = 1,
    timesteps: Iterable[int] | None = None,
    cameras: Iterable[str] | None = None,
    validation: ValidationSplit | None = None,
) -> list[VideoTask]:
    """The videos of ``predictions`` to evaluate against ``store``, each checked, with its frames chosen.

    A prediction without ground truth (a sequence not in the store, a hidden hold-out camera) is an error.
    """
    catalogue.check_benchmark(benchmark)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise EvaluationError(f"--every {every!r} is invalid; expected a positive number of frames.")
    if validation is not None and validation.benchmark != benchmark:
        raise EvaluationError(f"The validation split is for {validation.benchmark}, not {benchmark}.")
    store = os.fspath(store)
    sequences = stored_sequences(store, benchmark)
    spec = _spec(benchmark, sequences, store)
    try:
        found = find_videos(predictions, spec)
    except SubmissionError as error:
        raise EvaluationError(str(error)) from error
    wanted_cameras = None if cameras is None else {catalogue.check_serial(str(s)) for s in cameras}
    wanted_timesteps = None if timesteps is None else {int(t) for t in timesteps}
    tasks, unmatched_timesteps = [], set(wanted_timesteps or ())
    for video in spec.videos:
        if video.key not in found or (wanted_cameras is not None and video.serial not in wanted_cameras):
            continue
        if validation is not None and not validation.holds_out_any(video.sequence, video.serial):
            continue
        stored_sequence = _ground_truth(sequences, benchmark, video, store)
        try:
            check_source(found[video.key], video, spec)
        except SubmissionError as error:
            raise EvaluationError(str(error)) from error
        stored = stored_sequence.timesteps
        chosen = np.zeros(len(stored), dtype=bool)
        chosen[::every] = True
        if wanted_timesteps is not None:
            chosen &= np.isin(stored, list(wanted_timesteps))
            unmatched_timesteps -= set(stored.tolist())
        if validation is not None:
            chosen &= validation.validation_mask(video.sequence, video.serial, len(stored))
        positions = np.flatnonzero(chosen)
        if len(positions):
            tasks.append(VideoTask(
                store, benchmark, video.participant, video.sequence, video.serial, found[video.key],
                tuple(int(p) for p in positions), tuple(int(t) for t in stored[positions]),
                stored_sequence.has_alpha, catalogue.SPECS[benchmark].fps / every,
            ))
    if unmatched_timesteps:
        raise EvaluationError(
            f"Timestep {min(unmatched_timesteps)} is not a stored frame of any predicted sequence; "
            "timesteps are original frame indices (see `nersemble-zarr info`)."
        )
    if not tasks:
        where = " in the validation split" if validation is not None else ""
        raise EvaluationError(f"No frame of the predictions is left to evaluate{where} after the selection.")
    return tasks


def _spec(benchmark: str, sequences: dict[tuple[int, str], StoredSequence], store: str) -> SubmissionSpec:
    """Every video the predictions may hold (every sequence and camera of the benchmark), with the store's
    frame counts, original frame indices and frame size."""
    if not sequences:
        raise EvaluationError(f"The store {store} holds no {benchmark} frames to compare predictions with.")
    first = next(iter(sequences.values()))
    height, width = first.height, first.width
    timesteps = {key: tuple(int(t) for t in sequence.timesteps) for key, sequence in sequences.items()}
    videos = tuple(
        ExpectedVideo(p, s, serial, len(timesteps[p, s]) if (p, s) in timesteps else None, timesteps.get((p, s)))
        for p in catalogue.participants(benchmark)
        for s in catalogue.sequences(benchmark, p)
        for serial in catalogue.SERIALS
    )
    return SubmissionSpec(benchmark, int(width), int(height), catalogue.SPECS[benchmark].fps, videos)


def _ground_truth(
    sequences: dict[tuple[int, str], StoredSequence], benchmark: str, video: ExpectedVideo, store: str
) -> StoredSequence:
    """The stored sequence of a predicted video, after checking the store has that camera's frames."""
    group = schema.sequence_group(benchmark, video.participant, video.sequence)
    sequence = sequences.get((video.participant, video.sequence))
    if sequence is None and catalogue.is_test_sequence(benchmark, video.sequence):
        raise EvaluationError(
            f"The prediction {video.entry} has no ground truth: {video.sequence} is one of the benchmark's hidden "
            "test sequences, whose frames only the server has; hold out a train sequence with a validation split."
        )
    if sequence is None:
        raise EvaluationError(
            f"The prediction {video.entry} has no ground truth: the store {store} holds no frames of {group}."
        )
    if not sequence.is_written(video.serial):
        hidden = sequence.is_hidden(video.serial)
        reason = ("it is one of the benchmark's hidden hold-out views, whose frames only the server has; "
                  "evaluate on a validation split of train cameras instead") if hidden else "its frames are not stored"
        raise EvaluationError(f"The prediction {video.entry} has no ground truth in {store}: {reason}.")
    return sequence
