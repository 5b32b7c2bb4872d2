"""The evaluation picture: per-frame PSNR of every camera, and a strip of the worst frames' error maps."""

from __future__ import annotations

import os

from ..atomic import atomic_path
from .report import EvaluationResult

WORST_SHOWN = 4


PSNR_CAP = 100.0  # where identical frames (PSNR = inf) are drawn, said in the legend
STYLES = [(marker, line) for line in ("-", "--", ":", "-.") for marker in "o^sDv"]  # no two videos look alike


def plot_result(result: EvaluationResult, path: str | os.PathLike) -> None:
    """Write the PNG at ``path`` (atomically): PSNR over timestep per video on top, below it the error maps
    (mean absolute RGB error) of the lowest-PSNR frames, worst first."""
    figure = result_figure(result)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            figure.savefig(handle, format="png")


def result_figure(result: EvaluationResult):
    """The matplotlib Figure of ``plot_result``. Each video has its own marker and line style (curves that
    coincide stay visible: markers shrink with each video drawn over them); identical frames, whose PSNR is
    infinite, sit on a dashed line at ``PSNR_CAP`` dB that the legend names."""
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
    n_videos = len(result.videos)
    for index, video in enumerate(result.videos):
        marker, line = STYLES[index % len(STYLES)]
        values = [min(frame.psnr, PSNR_CAP) for frame in video.frames]
        curves.plot([frame.timestep for frame in video.frames], values, marker=marker, linestyle=line,
                    markersize=3 + 5 * (n_videos - index) / n_videos, markerfacecolor="none", alpha=0.9,
                    label=f"{video.participant:03d}/{video.sequence}/{video.serial}")
    if any(frame.psnr == float("inf") for video in result.videos for frame in video.frames):
        curves.axhline(PSNR_CAP, color="grey", linestyle="--", linewidth=0.8,
                       label=f"identical frames: PSNR = inf, drawn at {PSNR_CAP:.0f} dB")
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
    return figure
