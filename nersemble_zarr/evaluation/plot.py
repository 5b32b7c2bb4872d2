"""The evaluation picture: per-frame PSNR of every camera, and a strip of the worst frames' error maps."""

from __future__ import annotations

import os

from ..atomic import atomic_path
from .report import EvaluationResult

WORST_SHOWN = 4


def plot_result(result: EvaluationResult, path: str | os.PathLike) -> None:
    """Write the PNG at ``path`` (atomically): PSNR over timestep per video on top, below it the error maps
    (mean absolute RGB error) of the lowest-PSNR frames, worst first."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    worst = sorted(
        ((frame.psnr, video, frame.timestep) for video in result.videos for frame in video.frames
         if frame.timestep in video.error_maps),
        key=lambda entry: entry[0],
    )[:WORST_SHOWN]
    figure = Figure(figsize=(10, 6.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, max(1, len(worst)), height_ratios=(1.2, 1))
    curves = figure.add_subplot(grid[0, :])
    for video in result.videos:
        values = [min(frame.psnr, 100.0) for frame in video.frames]  # identical frames (inf) drawn at 100 dB
        curves.plot([frame.timestep for frame in video.frames], values, marker=".",
                    label=f"{video.participant:03d}/{video.sequence}/{video.serial}")
    curves.set_xlabel("timestep (original frame index)")
    curves.set_ylabel("PSNR (dB)")
    curves.set_title(f"{result.benchmark}: per-frame PSNR per camera")
    curves.legend(fontsize=7, ncol=2)
    for column, (value, video, timestep) in enumerate(worst):
        axes = figure.add_subplot(grid[1, column])
        shown = axes.imshow(video.error_maps[timestep], cmap="magma", vmin=0, vmax=0.25)
        axes.set_title(f"{video.serial} t={timestep}\n{value:.2f} dB", fontsize=8)
        axes.set_axis_off()
        if column == len(worst) - 1:
            figure.colorbar(shown, ax=axes, shrink=0.8, label="|error|")
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            figure.savefig(handle, format="png")
