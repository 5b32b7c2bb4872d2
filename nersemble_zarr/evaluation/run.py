"""Evaluate predicted videos against the store: one task per video, frames streamed in small batches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from .. import schema
from ..chunk_reader import stored_frames
from ..errors import ConfigError, EvaluationError, SubmissionError
from ..parallel import run_tasks
from ..progress import Progress, set_total
from ..submission.frames import check_range
from . import jod as jod_module
from . import lpips as lpips_module
from .metrics import frame_tensors, on_white, score_frames, squared_errors
from .plan import VideoTask, plan_evaluation
from .report import FRAME_METRICS, EvaluationResult, FrameScores, VideoScores
from .splits import ValidationSplit, read_split

BATCH_BYTES = 16 * 2**20  # bytes of float32 predicted frames per batch (at least one frame: one at full resolution)
TENSOR_BYTES = 4          # float32
ERROR_MAPS = 2             # worst frames per video whose error maps are kept for the plot


@dataclass(frozen=True)
class Settings:
    """What to compute and where: LPIPS and JOD on or off, the torch device."""

    lpips: bool
    jod: bool
    device: str


def evaluate(
    predictions: Any,
    store: str | os.PathLike,
    benchmark: str,
    *,
    every: int = 1,
    timesteps: Iterable[int] | None = None,
    cameras: Iterable[str] | None = None,
    validation: ValidationSplit | str | os.PathLike | None = None,
    lpips: bool = True,
    jod: bool = True,
    device: str | None = None,
    workers: int = 2,
    client: Any = None,
    progress: Progress | None = None,
) -> EvaluationResult:
    """PSNR, SSIM, LPIPS and JOD of ``predictions`` against the ground truth in ``store``.

    ``predictions`` is anything export-submission accepts (a store, DataTree, mapping or image folder) or a
    submission zip. ``every`` keeps every n-th stored frame, ``timesteps`` (original frame indices) and
    ``cameras`` restrict, ``validation`` (a split, or a JSON file / store holding one) keeps only its
    validation frames. LPIPS and JOD run on ``device`` (default: CUDA when available); when their weights
    or package are missing they are None and ``result.unavailable`` says why. One task per video runs on
    ``client`` or ``workers`` threads; ``progress`` is told the number of videos and called as each finishes.
    """
    device = _check_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    split = None if validation is None else read_split(validation)
    tasks = plan_evaluation(predictions, store, benchmark, every=every, timesteps=timesteps, cameras=cameras,
                            validation=split)
    unavailable = []
    if lpips and (reason := lpips_module.unavailable_reason()) is not None:
        unavailable.append(reason)
        lpips = False
    if jod and (reason := jod_module.unavailable_reason()) is not None:
        unavailable.append(reason)
        jod = False
    settings = Settings(lpips=lpips, jod=jod, device=device)
    if lpips:
        lpips_module.load_lpips(device)  # a bad weights file is one error here, not one per task
    set_total(progress, len(tasks))
    videos = run_tasks(lambda task: evaluate_video(task, settings), tasks, workers=workers, client=client,
                       progress=progress)
    return EvaluationResult(benchmark, tuple(videos), tuple(unavailable))


def _check_device(device: str) -> str:
    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise ConfigError(f"Device {device!r} is not a torch device; use cpu or cuda.") from error
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"Device {device!r} is not supported; use cpu or cuda.")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"Device {device!r} was asked for but torch sees no CUDA GPU; use --device cpu.")
    return device


def evaluate_video(task: VideoTask, settings: Settings) -> VideoScores:
    """Per-frame scores of one video (and its JOD), reading a batch of frames at a time."""
    network = lpips_module.load_lpips(settings.device) if settings.lpips else None
    frames: list[FrameScores] = []
    worst: list[tuple[float, int, np.ndarray]] = []  # (psnr, timestep, error map) of the worst frames so far
    batch: list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None, float]] = []
    shape = (0, 0)
    for item in _frame_triples(task):
        if batch and item[4] != batch[0][4]:  # a batch holds frames of one kind (uint8 or float)
            frames.extend(_score_batch(task, batch, network, settings.device, worst))
            batch = []
        batch.append(item)
        shape = item[1].shape[:2]
        if len(batch) * item[2].size * TENSOR_BYTES >= BATCH_BYTES:
            frames.extend(_score_batch(task, batch, network, settings.device, worst))
            batch = []
    if batch:
        frames.extend(_score_batch(task, batch, network, settings.device, worst))
    jod = None
    if settings.jod:
        pairs = ((prediction / scale, truth / 255.0) for _, prediction, truth, _, scale in _frame_triples(task))
        jod = jod_module.video_jod(pairs, len(task.positions), shape, task.fps, settings.device)
    maps = {timestep: error for _, timestep, error in worst}
    return VideoScores(task.participant, task.sequence, task.serial, tuple(frames), jod, task.has_alpha, maps)


def _frame_triples(task: VideoTask) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray | None, float]]:
    """(timestep, prediction, truth, alpha, scale) of every chosen frame as read: the prediction (H, W, 3) uint8
    or float (values / scale in [0, 1]), the stored truth (H, W, 3) and alpha (H, W) uint8 (None without alpha)."""
    group = schema.sequence_group(task.benchmark, task.participant, task.sequence)
    images = stored_frames(task.store, group, schema.IMAGES)
    alpha = stored_frames(task.store, group, schema.ALPHA) if task.has_alpha else None
    wanted = dict(zip(task.positions, task.timesteps))
    position = 0
    for block in task.source.blocks():
        try:
            dtype = check_range(block, task.name, position)
        except SubmissionError as error:
            raise EvaluationError(str(error)) from error
        for offset in range(len(block)):
            if position + offset in wanted:
                timestep = wanted[position + offset]
                scale = 255.0 if dtype == np.uint8 else 1.0
                prediction = np.asarray(block[offset])
                truth = images.read(task.serial, timestep)
                mask = None if alpha is None else alpha.read(task.serial, timestep)
                yield timestep, prediction, truth, mask, scale
        position += len(block)
        if position > task.positions[-1]:
            return


def _stacked(frames: list[np.ndarray]) -> np.ndarray:
    """The frames as one (k, ...) array: a view of a lone frame (a full-size batch holds one), else a copy."""
    return frames[0][None] if len(frames) == 1 else np.stack(frames)


def _score_batch(task: VideoTask, batch: list, network, device: str, worst: list) -> list[FrameScores]:
    """Scores of a batch of frames, each read and converted once; ``worst`` keeps the error maps of the
    lowest-PSNR frames seen."""
    prediction = _stacked([item[1] for item in batch])
    truth = _stacked([item[2] for item in batch])
    alpha = _stacked([item[3] for item in batch]) if task.has_alpha else None
    scale = batch[0][4]
    tensors = frame_tensors(prediction, truth, alpha, scale, device)
    scores = score_frames(tensors, squared_errors(prediction, truth, alpha, scale))
    if network is not None:
        prediction_floats, truth_floats = tensors.floats()
        scores["lpips"] = network(prediction_floats, truth_floats)
        if task.has_alpha:
            opacity = tensors.opacity()
            scores["lpips_masked"] = network(on_white(prediction_floats, opacity), on_white(truth_floats, opacity))
    values = {name: scores[name].double().cpu().numpy() for name in scores}
    for i, item in enumerate(batch):
        if len(worst) < ERROR_MAPS or values["psnr"][i] < worst[-1][0]:
            error = tensors.error_map(i).cpu().numpy()
            worst.append((float(values["psnr"][i]), item[0], error))
            worst.sort(key=lambda entry: entry[0])
            del worst[ERROR_MAPS:]
    return [
        FrameScores(item[0], **{name: float(values[name][i]) if name in values else None for name in FRAME_METRICS})
        for i, item in enumerate(batch)
    ]
