"""JOD (just-objectionable-differences) of one video with FovVideoVDP (``pyfvvdp``, display ``standard_4k``).

Frames are streamed into the metric one at a time, so memory holds only its temporal window (250 ms of
frames), never the video. ``pyfvvdp`` ships its parameters; when it is not installed JOD is reported
unavailable.
"""

from __future__ import annotations

import importlib.util
from typing import Iterator

import numpy as np
import torch

DISPLAY = "standard_4k"


def unavailable_reason() -> str | None:
    """One sentence saying why JOD cannot run, or None when ``pyfvvdp`` is installed."""
    if importlib.util.find_spec("pyfvvdp") is None:
        return "JOD is unavailable: the FovVideoVDP package is not installed; run `pip install pyfvvdp`."
    return None


def video_jod(frames: Iterator[tuple[np.ndarray, np.ndarray]], n_frames: int, shape: tuple[int, int],
              fps: float, device: str = "cpu") -> float:
    """JOD of a predicted video against the ground truth; ``frames`` yields (prediction, truth) pairs of
    (H, W, 3) float arrays in [0, 1], in order, ``n_frames`` of them."""
    import pyfvvdp
    from pyfvvdp.video_source import fvvdp_video_source_dm

    class StreamedFrames(fvvdp_video_source_dm):
        """Frames pulled from ``frames`` in order; FovVideoVDP asks for each index once, test frame first."""

        def __init__(self) -> None:
            super().__init__(display_photometry=DISPLAY, color_space_name="sRGB")
            self.index, self.pair = -1, None

        def get_frames_per_second(self) -> float:
            return fps if n_frames > 1 else 0

        def get_video_size(self) -> tuple[int, int, int]:
            return (shape[0], shape[1], n_frames)

        def _frame(self, index: int, which: int, device) -> torch.Tensor:
            if index != self.index:
                self.pair, self.index = next(frames), index
            picture = torch.from_numpy(np.ascontiguousarray(self.pair[which], dtype=np.float32))
            linear = self.dm_photometry.forward(picture.permute(2, 0, 1)[None, :, None].to(device))
            weights = self.color_to_luminance
            return linear[:, 0:1] * weights[0] + linear[:, 1:2] * weights[1] + linear[:, 2:3] * weights[2]

        def get_test_frame(self, frame: int, device=torch.device("cpu")) -> torch.Tensor:
            return self._frame(frame, 0, device)

        def get_reference_frame(self, frame: int, device=torch.device("cpu")) -> torch.Tensor:
            return self._frame(frame, 1, device)

    metric = pyfvvdp.fvvdp(display_name=DISPLAY, heatmap=None, quiet=True, device=torch.device(device))
    jod, _ = metric.predict_video_source(StreamedFrames())
    return float(jod)
