"""Finish a preview picture: draw captions with matplotlib (Agg, no window) and write it as PNG atomically."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..atomic import atomic_path

DPI = 100


@dataclass(frozen=True)
class Label:
    """A caption: top-left corner in pixels (x right, y down), text, RGB colour and font size in points."""

    x: int
    y: int
    text: str
    colour: tuple[int, int, int]
    size: float = 8


def with_labels(pixels: np.ndarray, labels: list[Label]) -> np.ndarray:
    """``pixels`` (H, W, 3) uint8 with the captions drawn on it, same size, pixels elsewhere unchanged."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height, width = pixels.shape[:2]
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    canvas = FigureCanvasAgg(figure)
    figure.figimage(pixels, xo=0, yo=0, origin="upper")
    for label in labels:
        figure.text(label.x / width, 1 - label.y / height, label.text, color=np.array(label.colour) / 255,
                    fontsize=label.size, family="DejaVu Sans Mono", ha="left", va="top")
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def write_png(path: str | os.PathLike, picture: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 picture as PNG under a temporary name, then move it onto ``path``."""
    import imagecodecs

    with atomic_path(path) as temporary:
        temporary.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(picture)))
