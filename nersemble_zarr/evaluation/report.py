"""Evaluation results: per-frame scores, their means per video, sequence and benchmark, and their outputs
(xarray Dataset, JSON, CSV, a terminal table)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..atomic import atomic_path
from .lpips import PROTOCOL as LPIPS_PROTOCOL
from .metrics import mean_or_nan

FRAME_METRICS = ("psnr", "ssim", "lpips", "psnr_masked", "ssim_masked", "lpips_masked")
VIDEO_METRICS = ("psnr", "ssim", "lpips", "jod", "psnr_masked", "ssim_masked", "lpips_masked")


@dataclass(frozen=True)
class FrameScores:
    """The metrics of one frame; None for a metric that was not computed."""

    timestep: int
    psnr: float
    ssim: float
    lpips: float | None
    psnr_masked: float | None
    ssim_masked: float | None
    lpips_masked: float | None


@dataclass(frozen=True)
class VideoScores:
    """Every evaluated frame of one video, its JOD, and the error maps of its worst frames (for the plot)."""

    participant: int
    sequence: str
    serial: str
    frames: tuple[FrameScores, ...]
    jod: float | None
    has_alpha: bool
    error_maps: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def mean(self, metric: str) -> float | None:
        """The video's value of ``metric``: JOD, or the mean of the per-frame values (None if not computed)."""
        if metric == "jod":
            return self.jod
        values = [getattr(frame, metric) for frame in self.frames]
        return None if any(value is None for value in values) else mean_or_nan(values)

    def record(self) -> dict:
        """The video's JSON record."""
        return {"participant": self.participant, "sequence": self.sequence, "serial": self.serial,
                "n_frames": len(self.frames), **{metric: self.mean(metric) for metric in VIDEO_METRICS}}


def _mean(values: list[float | None]) -> float | None:
    return None if not values or any(value is None for value in values) else mean_or_nan(values)


@dataclass(frozen=True)
class EvaluationResult:
    """The outcome of ``evaluate``: scores per video, and why a metric was not computed (if so)."""

    benchmark: str
    videos: tuple[VideoScores, ...]
    unavailable: tuple[str, ...] = ()

    def mean(self) -> dict[str, float | None]:
        """The benchmark's value of each metric: the mean over videos (each video weighs the same)."""
        return {metric: _mean([video.mean(metric) for video in self.videos]) for metric in VIDEO_METRICS}

    def sequences(self) -> dict[tuple[int, str], dict[str, float | None]]:
        """Each sequence's value of each metric: the mean over its videos."""
        keys = sorted({(video.participant, video.sequence) for video in self.videos})
        return {
            key: {metric: _mean([v.mean(metric) for v in self.videos if (v.participant, v.sequence) == key])
                  for metric in VIDEO_METRICS}
            for key in keys
        }

    @property
    def has_lpips(self) -> bool:
        """Whether LPIPS was computed (then its protocol goes with the numbers)."""
        return any(frame.lpips is not None for video in self.videos for frame in video.frames)

    def to_dict(self) -> dict:
        """The JSON document: benchmark, one record per video, the benchmark mean, and with LPIPS scores the
        LPIPS protocol (``lpips_protocol``: backbone and input range)."""
        document = {"benchmark": self.benchmark, "videos": [video.record() for video in self.videos],
                    "mean": self.mean()}
        if self.has_lpips:
            document["lpips_protocol"] = LPIPS_PROTOCOL
        return document

    def dataset(self):
        """Per-frame metrics as an xarray Dataset over a ``frame`` dimension indexed by (participant,
        sequence, serial, timestep), plus ``jod`` over a ``video`` dimension; missing metrics are NaN."""
        import pandas as pd
        import xarray as xr

        rows = [(v.participant, v.sequence, v.serial, f.timestep) for v in self.videos for f in v.frames]
        index = pd.MultiIndex.from_tuples(rows, names=["participant", "sequence", "serial", "timestep"])
        data = {
            metric: ("frame", np.array([_nan(getattr(f, metric)) for v in self.videos for f in v.frames]))
            for metric in FRAME_METRICS
        }
        data["jod"] = ("video", np.array([_nan(v.jod) for v in self.videos]))
        coords = xr.Coordinates.from_pandas_multiindex(index, "frame")
        dataset = xr.Dataset(data, coords=coords).assign_coords(
            video=[f"{v.participant:03d}/{v.sequence}/{v.serial}" for v in self.videos]
        )
        dataset.attrs["benchmark"] = self.benchmark
        if self.has_lpips:
            dataset.attrs["lpips_protocol"] = LPIPS_PROTOCOL
        return dataset

    def write_json(self, path: str | os.PathLike) -> None:
        """Write ``to_dict()`` atomically; a PSNR of identical frames is written as ``Infinity``."""
        with atomic_path(path) as temporary:
            temporary.write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    def write_csv(self, path: str | os.PathLike) -> None:
        """One row per evaluated frame (participant, sequence, serial, timestep, metrics), atomically."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["participant", "sequence", "serial", "timestep", *FRAME_METRICS])
        for video in self.videos:
            for frame in video.frames:
                writer.writerow([video.participant, video.sequence, video.serial, frame.timestep,
                                 *(_cell(getattr(frame, metric)) for metric in FRAME_METRICS)])
        with atomic_path(path) as temporary:
            temporary.write_text(buffer.getvalue())

    def table(self) -> str:
        """A plain-text table: one row per video, per sequence, and the benchmark mean."""
        header = ["video", "frames", *VIDEO_METRICS]
        rows = [[f"{v.participant:03d}/{v.sequence}/{v.serial}", str(len(v.frames)),
                 *(_shown(v.mean(m)) for m in VIDEO_METRICS)] for v in self.videos]
        rows += [[f"{p:03d}/{s} (sequence)", str(sum(len(v.frames) for v in self.videos
                                                    if (v.participant, v.sequence) == (p, s))),
                  *(_shown(values[m]) for m in VIDEO_METRICS)] for (p, s), values in self.sequences().items()]
        mean = self.mean()
        rows.append([f"{self.benchmark} (mean of videos)", str(sum(len(v.frames) for v in self.videos)),
                     *(_shown(mean[m]) for m in VIDEO_METRICS)])
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
                 for row in [header, *rows]]
        lines.insert(1, "-" * len(lines[0]))
        if self.has_lpips:
            lines.append(f"lpips: {LPIPS_PROTOCOL}")
        return "\n".join(lines)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _cell(value: float | None) -> str:
    return "" if value is None else repr(value)


def _shown(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.4f}"
