"""Evaluate predicted videos against the store: one dask task per video, frames streamed in small batches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from .. import schema
from .. import store as store_module
from ..errors import ConfigError, EvaluationError, SubmissionError
from ..parallel import run_tasks
from ..progress import Progress, set_total
from ..submission.frames import check_range
from . import jod as jod_module
from . import lpips as lpips_module
from .metrics import on_white, psnr, ssim
from .plan import VideoTask, plan_evaluation
from .report import FRAME_METRICS, EvaluationResult, FrameScores, VideoScores
from .splits import ValidationSplit, read_split

BATCH_BYTES = 32 * 2**20  # float64 bytes of predicted frames per batch (at least one frame)
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
    batch: list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]] = []
    shape = (0, 0)
    for item in _frame_triples(task):
        batch.append(item)
        shape = item[1].shape[:2]
        if len(batch) * item[1].nbytes >= BATCH_BYTES:
            frames.extend(_score_batch(task, batch, network, settings.device, worst))
            batch = []
    if batch:
        frames.extend(_score_batch(task, batch, network, settings.device, worst))
    jod = None
    if settings.jod:
        pairs = ((prediction, truth) for _, prediction, truth, _ in _frame_triples(task))
        jod = jod_module.video_jod(pairs, len(task.positions), shape, task.fps, settings.device)
    maps = {timestep: error for _, timestep, error in worst}
    return VideoScores(task.participant, task.sequence, task.serial, tuple(frames), jod, task.has_alpha, maps)


def _frame_triples(task: VideoTask) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(timestep, prediction, truth, alpha) of every chosen frame, as float64 (H, W, 3) / (H, W) in [0, 1]."""
    dataset = store_module.sequence(store_module.open(task.store, dask=False), task.benchmark,
                                    task.participant, task.sequence)
    camera = {schema.SERIAL: task.serial}
    images = dataset[schema.IMAGES].sel(camera)
    alpha = dataset[schema.ALPHA].sel(camera) if task.has_alpha else None
    wanted = dict(zip(task.positions, task.timesteps))
    position = 0
    for block in task.source.blocks():
        try:
            dtype = check_range(block, task.name, position)
        except SubmissionError as error:
            raise EvaluationError(str(error)) from error
        for offset in range(len(block)):
            if position + offset in wanted:
                index = {schema.TIMESTEP: position + offset}
                scale = 255.0 if dtype == np.uint8 else 1.0
                prediction = np.asarray(block[offset], dtype=np.float64) / scale
                truth = images.isel(index).values.astype(np.float64) / 255.0
                mask = None if alpha is None else alpha.isel(index).values.astype(np.float64) / 255.0
                yield wanted[position + offset], prediction, truth, mask
        position += len(block)
        if position > task.positions[-1]:
            return


def _tensor(frames: list[np.ndarray], device: str) -> torch.Tensor:
    stacked = torch.from_numpy(np.stack(frames))
    # channels first and contiguous: every metric then reads whole 2-D planes
    return (stacked.permute(0, 3, 1, 2).contiguous() if stacked.ndim == 4 else stacked[:, None]).to(device)


def _score_batch(task: VideoTask, batch: list, network, device: str, worst: list) -> list[FrameScores]:
    """Scores of a batch of frames; ``worst`` keeps the error maps of the lowest-PSNR frames seen."""
    prediction = _tensor([item[1] for item in batch], device)
    truth = _tensor([item[2] for item in batch], device)
    scores = {"psnr": psnr(prediction, truth), "ssim": ssim(prediction, truth)}
    if network is not None:
        scores["lpips"] = network(prediction, truth)
    if task.has_alpha:
        alpha = _tensor([item[3] for item in batch], device)
        masked_prediction, masked_truth = on_white(prediction, alpha), on_white(truth, alpha)
        scores["psnr_masked"] = psnr(masked_prediction, masked_truth)
        scores["ssim_masked"] = ssim(masked_prediction, masked_truth)
        if network is not None:
            scores["lpips_masked"] = network(masked_prediction, masked_truth)
    values = {name: scores[name].double().cpu().numpy() for name in scores}
    for i, (timestep, frame_prediction, frame_truth, _) in enumerate(batch):
        if len(worst) < ERROR_MAPS or values["psnr"][i] < worst[-1][0]:
            error = np.abs(frame_prediction - frame_truth).mean(axis=-1).astype(np.float32)
            worst.append((float(values["psnr"][i]), timestep, error))
            worst.sort(key=lambda entry: entry[0])
            del worst[ERROR_MAPS:]
    return [
        FrameScores(item[0], **{name: float(values[name][i]) if name in values else None for name in FRAME_METRICS})
        for i, item in enumerate(batch)
    ]
