"""Per-frame image metrics on torch tensors (CPU or GPU): PSNR, SSIM and compositing on white, in one pass.

``frame_tensors`` wraps a batch of frames as they were read (uint8, or float in [0, 1]) without copying them;
``score_frames`` walks each frame in strips of rows, and each strip converts its own rows to float once and
gives the five Gaussian-blurred moments of SSIM for every variant (full frame, masked on white) and channel in
one small tensor that stays in a core's cache: no full-frame float copy is made. The Gaussian is separable:
along rows one matrix product with a band matrix on the CPU, along columns (and on a GPU both ways) sums of
shifted slices, torch operations several times faster on the CPU than scikit-image's scipy filter or a
depthwise ``conv2d``. PSNR's squared errors are summed exactly in integers
(:func:`squared_errors`), a block of rows at a time.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 1.0
ALPHA_RANGE = 255.0  # alpha maps are uint8
STRIP_ROWS = 16  # output rows of SSIM per strip of a frame on the CPU: a strip's moments stay in a core's cache
GPU_STRIP_ROWS = 256  # on a GPU: fewer, larger kernels
ERROR_ROWS = 64  # rows of a frame per block of squared errors and error maps


def _gaussian_window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    radius = SSIM_WINDOW // 2
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=torch.float64)
    weights = torch.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    return (weights / weights.sum()).to(dtype)


def _blur(images: torch.Tensor, window: torch.Tensor, out: tuple[torch.Tensor, torch.Tensor] | None = None
          ) -> torch.Tensor:
    """Separable Gaussian filter of (..., H, W) over the valid region (no padding): (..., H - 10, W - 10).

    Rows, then columns: on the CPU the rows as one matrix product with a band matrix (:func:`_band`; one pass
    instead of 11), on a GPU and for the columns as a sum of the 11 shifted slices weighted by ``window``;
    ``out`` may give the buffers of the two passes, (..., H - 10, W) and (..., H - 10, W - 10).
    """
    taps = window.tolist()
    rows, cols = images.shape[-2] - len(taps) + 1, images.shape[-1] - len(taps) + 1
    if images.device.type == "cpu":
        planes = images.reshape(-1, *images.shape[-2:])
        target = None if out is None else out[0].view(-1, rows, images.shape[-1])
        vertical = torch.matmul(_band(tuple(taps), images.shape[-2], images.dtype), planes, out=target)
        vertical = vertical.view(*images.shape[:-2], rows, images.shape[-1])
    else:
        vertical = torch.mul(images[..., 0:rows, :], taps[0], out=None if out is None else out[0])
        for offset, tap in enumerate(taps[1:], 1):
            vertical.add_(images[..., offset:offset + rows, :], alpha=tap)
    horizontal = torch.mul(vertical[..., 0:cols], taps[0], out=None if out is None else out[1])
    for offset, tap in enumerate(taps[1:], 1):
        horizontal.add_(vertical[..., offset:offset + cols], alpha=tap)
    return horizontal


@functools.lru_cache(maxsize=16)
def _band(taps: tuple[float, ...], inputs: int, dtype: torch.dtype) -> torch.Tensor:
    """The (inputs - 10, inputs) matrix whose row r holds ``taps`` from column r on: the filter along rows as
    one matrix product (shared by the strip threads, never written)."""
    band = torch.zeros(inputs - len(taps) + 1, inputs, dtype=torch.float64)
    for row in range(len(band)):
        band[row, row:row + len(taps)] = torch.tensor(taps, dtype=torch.float64)
    return band.to(dtype)


def _ssim_map(mu_x, mu_y, xx, yy, xy, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """The SSIM map from the blurred moments, computed in place: it overwrites its arguments and returns
    ``scratch`` (a tensor of their shape; a new one when None) holding the map."""
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    mu_xy = torch.mul(mu_x, mu_y, out=scratch)
    covariance = xy.sub_(mu_xy)
    mu_xx, mu_yy = mu_x.square_(), mu_y.square_()
    variance_x, variance_y = xx.sub_(mu_xx), yy.sub_(mu_yy)
    numerator = mu_xy.mul_(2).add_(c1).mul_(covariance.mul_(2).add_(c2))
    denominator = mu_xx.add_(mu_yy).add_(c1).mul_(variance_x.add_(variance_y).add_(c2))
    return numerator.div_(denominator)


def _ssim_map_mean(mu_x, mu_y, xx, yy, xy) -> torch.Tensor:
    """Mean of the SSIM map over the last two axes (one strip's or a whole frame's); overwrites its arguments."""
    return _ssim_map(mu_x, mu_y, xx, yy, xy).mean(dim=(-2, -1))


def _strips(height: int, strip_rows: int = STRIP_ROWS):
    """(first input row, output rows) of each strip of a frame ``height`` rows high; a strip reads 10 more rows."""
    valid = height - SSIM_WINDOW + 1
    return [(start, min(strip_rows, valid - start)) for start in range(0, valid, strip_rows)]


def _ssim_sums(x: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor | None = None,
               divisors: tuple[float, float] = (1.0, 1.0), dtype: torch.dtype | None = None) -> torch.Tensor:
    """(k, variants, c) float64 sums of the SSIM map of predictions ``x`` and truths ``y`` (k, c, H, W, any
    dtype and strides, divided by ``divisors`` into [0, 1]) computed in ``dtype`` (default: ``x``'s): the full
    frames, then (with ``alpha`` (k, 1, H, W) uint8) both composited on white, each strip converted and
    composited once.

    The work is cut into one strip of one frame at a time, small enough that its moments stay in a core's
    cache; on the CPU the strips run side by side on one thread per core (:func:`_strip_pool`), on a GPU
    each frame's strips run in turn."""
    strips = _strips(x.shape[-2], STRIP_ROWS if x.device.type == "cpu" else GPU_STRIP_ROWS)
    frames = [(x[i], y[i], None if alpha is None else alpha[i], divisors, dtype or x.dtype) for i in range(len(x))]
    sums = _on_cores(_strip_ssim_sums, [(*frame, start, rows) for frame in frames for start, rows in strips],
                     x.device)
    return torch.stack([sum(sums[i * len(strips):(i + 1) * len(strips)]) for i in range(len(frames))])


def _on_cores(function, arguments: list[tuple], device: torch.device) -> list:
    """``function(*a)`` for each tuple of ``arguments``, in order: on the CPU side by side on the strip pool's
    threads (torch single-threaded in each), on a GPU in turn. Every CPU tensor operation of the PSNR + SSIM
    pass runs there, so no idle OpenMP team of another thread spins on the cores the strips need."""
    if device.type != "cpu":
        return [function(*item) for item in arguments]
    pool = _strip_pool()
    return [future.result() for future in [pool.submit(function, *item) for item in arguments]]


def _strip_ssim_sums(x: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor | None, divisors: tuple[float, float],
                     dtype: torch.dtype, start: int, rows: int) -> torch.Tensor:
    """The SSIM map sums (variants, c) of one frame's strip: ``rows`` output rows from input rows ``start`` on."""
    channels, _, width = x.shape
    n_variants = 1 if alpha is None else 2
    span = slice(start, start + rows + SSIM_WINDOW - 1)
    planes, inputs = (n_variants, 5, channels), rows + SSIM_WINDOW - 1
    moments = _thread_buffer("moments", (*planes, inputs, width), dtype, x.device)
    for target, source, divisor in ((moments[0, 0], x, divisors[0]), (moments[0, 1], y, divisors[1])):
        target.copy_(source[:, span])
        if divisor != 1:
            target.div_(divisor)
    if alpha is not None:
        opacity = _thread_buffer("opacity", (1, inputs, width), dtype, x.device).copy_(alpha[:, span])
        opacity.div_(ALPHA_RANGE)
        white = _thread_buffer("white", opacity.shape, dtype, x.device).fill_(1).sub_(opacity)
        torch.addcmul(white, moments[0, 0], opacity, out=moments[1, 0])
        torch.addcmul(white, moments[0, 1], opacity, out=moments[1, 1])
    first, second = moments[:, 0], moments[:, 1]
    torch.mul(first, first, out=moments[:, 2])
    torch.mul(second, second, out=moments[:, 3])
    torch.mul(first, second, out=moments[:, 4])
    window = _gaussian_window(x.device, dtype)
    blurred = _blur(moments, window, out=(_thread_buffer("vertical", (*planes, rows, width), dtype, x.device),
                                          _thread_buffer("horizontal", (*planes, rows, width - SSIM_WINDOW + 1),
                                                         dtype, x.device)))
    scratch = _thread_buffer("scratch", blurred[:, 0].shape, dtype, x.device)
    return _ssim_map(*blurred.unbind(1), scratch=scratch).sum(dim=(-2, -1), dtype=torch.float64)


_buffers = threading.local()


def _thread_buffer(name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A tensor of ``shape`` in this thread's buffer ``name``, reused from strip to strip and frame to frame
    (grown when a call needs more): the pool's threads allocate nothing per strip, so memory neither grows
    with the frames (freed blocks scattered over one malloc arena per thread) nor is touched fresh."""
    held = getattr(_buffers, "held", None)
    if held is None:
        held = _buffers.held = {}
    key, size = (name, dtype, torch.device(device)), math.prod(shape)
    flat = held.get(key)
    if flat is None or flat.numel() < size:
        flat = held[key] = torch.empty(size, dtype=dtype, device=device)
    return flat[:size].view(shape)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _strip_pool() -> ThreadPoolExecutor:
    """One thread per core for the strips, each running torch single-threaded: a strip is a few dozen small
    elementwise operations, and torch's own threads would fork and join once per operation (on a busy machine
    each join waits for a descheduled thread). The caller's torch thread count is left as it was."""
    global _pool
    with _pool_lock:
        if _pool is None:
            count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            previous, started = torch.get_num_threads(), threading.Barrier(count)

            def single_threaded() -> None:
                torch.set_num_threads(1)
                torch.get_num_threads()  # settles this thread's count before the caller's is restored
                started.wait()

            pool = ThreadPoolExecutor(count, thread_name_prefix="nersemble-ssim")
            for future in [pool.submit(single_threaded) for _ in range(count)]:
                future.result()
            torch.set_num_threads(previous)
            _pool = pool
        return _pool


def _check_size(frames: torch.Tensor) -> None:
    if min(frames.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels.")


def ssim(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-frame SSIM of (k, c, H, W) tensors in [0, 1], in their dtype: Gaussian window 11, sigma 1.5, K1 0.01,
    K2 0.03, data range 1, per channel then averaged.

    The SSIM map is averaged over the pixels whose whole window lies inside the frame (what scikit-image's
    ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)`` averages after cropping).
    """
    _check_size(prediction)
    pixels = (prediction.shape[-2] - SSIM_WINDOW + 1) * (prediction.shape[-1] - SSIM_WINDOW + 1)
    return (_ssim_sums(prediction, truth)[:, 0] / pixels).mean(dim=1)


def psnr(squared_error_sum: torch.Tensor, values: int) -> torch.Tensor:
    """PSNR in dB for data range 1 from a sum of squared errors over ``values`` values: ``10 log10(1 / MSE)``;
    +inf where the frames are equal."""
    return 10 * torch.log10(DATA_RANGE**2 / (squared_error_sum / values))  # 1 / 0 -> inf


@dataclass(frozen=True)
class FrameTensors:
    """A batch of frames as read, on the metrics' device, not copied into floats: predictions and truths
    (k, 3, H, W) views of the (k, H, W, 3) frames (uint8, or float predictions), alpha (k, 1, H, W) uint8 or
    None; predictions are divided by ``scale`` and truths by 255 into [0, 1], in ``dtype``."""

    prediction: torch.Tensor
    truth: torch.Tensor
    alpha: torch.Tensor | None
    scale: float
    dtype: torch.dtype

    def floats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions and truths as (k, 3, H, W) tensors in [0, 1] (a full copy of the batch: LPIPS needs it)."""
        return self._float(self.prediction, self.scale), self._float(self.truth, 255.0)

    def opacity(self) -> torch.Tensor:
        """The alpha as (k, 1, H, W) in [0, 1] (only with alpha)."""
        return self._float(self.alpha, ALPHA_RANGE)

    def error_map(self, index: int) -> torch.Tensor:
        """(H, W) mean absolute error over the channels of frame ``index``, a block of rows at a time."""
        prediction, truth = self.prediction[index], self.truth[index]
        error = torch.empty(prediction.shape[1:], dtype=self.dtype, device=prediction.device)

        def block(start: int) -> None:
            rows = slice(start, start + ERROR_ROWS)
            shape = prediction[:, rows].shape
            difference = _thread_buffer("error_x", shape, self.dtype, error.device).copy_(prediction[:, rows])
            truth_rows = _thread_buffer("error_y", shape, self.dtype, error.device).copy_(truth[:, rows])
            difference.div_(self.scale).sub_(truth_rows.div_(255.0))
            torch.mean(difference.abs_(), dim=0, out=error[rows])

        _on_cores(block, [(start,) for start in range(0, len(error), ERROR_ROWS)], error.device)
        return error

    def _float(self, frames: torch.Tensor, divisor: float) -> torch.Tensor:
        return torch.empty(frames.shape, dtype=self.dtype, device=frames.device).copy_(frames).div_(divisor)


def frame_tensors(prediction: np.ndarray, truth: np.ndarray, alpha: np.ndarray | None, scale: float,
                  device: str, dtype: torch.dtype = torch.float32) -> FrameTensors:
    """(k, H, W, 3) predictions (divided by ``scale``), uint8 truths and (k, H, W) uint8 alphas as tensors on
    ``device`` (no copy on the CPU)."""

    def planes(frames: np.ndarray) -> torch.Tensor:
        source = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
        return source.permute(0, 3, 1, 2) if source.ndim == 4 else source[:, None]

    return FrameTensors(planes(prediction), planes(truth), None if alpha is None else planes(alpha), scale, dtype)


def squared_errors(prediction: np.ndarray, truth: np.ndarray, alpha: np.ndarray | None,
                   scale: float) -> tuple[np.ndarray, np.ndarray | None]:
    """(k,) float64 sums of squared errors of the full frames and of the frames on white (None without alpha),
    from the frames as read, a block of rows at a time: uint8 exactly in integers, floats in float64 (on white,
    the difference of two frames is their difference times the alpha)."""
    exact = prediction.dtype == np.uint8
    full = np.zeros(len(prediction), dtype=np.int64 if exact else np.float64)  # int64: exact below 2**31 values
    masked = None if alpha is None else np.zeros_like(full)
    for start in range(0, prediction.shape[1], ERROR_ROWS):
        rows = slice(start, start + ERROR_ROWS)
        if exact:
            difference = prediction[:, rows].astype(np.int64) - truth[:, rows]
        else:
            difference = prediction[:, rows].astype(np.float64) / scale - truth[:, rows] / 255.0
        full += _sums_of_squares(difference)
        if alpha is not None:
            difference *= alpha[:, rows, :, None] if exact else alpha[:, rows, :, None] / 255.0
            masked += _sums_of_squares(difference)
    unit = 255.0**2 if exact else 1.0
    return full / unit, None if masked is None else masked / (unit * 255.0**2 if exact else unit)


def _sums_of_squares(values: np.ndarray) -> np.ndarray:
    """(k,) sums of squares of each frame (int64 for integers: exact)."""
    flat = values.reshape(len(values), -1)
    return np.einsum("ij,ij->i", flat, flat)


def score_frames(tensors: FrameTensors, errors: tuple[np.ndarray, np.ndarray | None]) -> dict[str, torch.Tensor]:
    """``psnr`` and ``ssim`` per frame, and ``psnr_masked`` and ``ssim_masked`` with alpha: one pass over
    strips of rows for SSIM, full frame and masked together; ``errors`` from :func:`squared_errors`."""
    x, y, alpha = tensors.prediction, tensors.truth, tensors.alpha
    _check_size(x)
    pixels = (x.shape[-2] - SSIM_WINDOW + 1) * (x.shape[-1] - SSIM_WINDOW + 1)
    sums = _ssim_sums(x, y, alpha, (tensors.scale, 255.0), tensors.dtype)
    ssims = (sums / pixels).mean(dim=2).cpu()
    values = x[0].numel()
    scores = {"psnr": psnr(torch.from_numpy(np.asarray(errors[0], dtype=np.float64)), values), "ssim": ssims[:, 0]}
    if alpha is not None:
        scores["psnr_masked"] = psnr(torch.from_numpy(np.asarray(errors[1], dtype=np.float64)), values)
        scores["ssim_masked"] = ssims[:, 1]
    return scores


def on_white(images: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Composite frames on white with ``alpha`` (k, 1, H, W) in [0, 1]: ``image * alpha + (1 - alpha)``."""
    return images * alpha + (1 - alpha)


def mean_or_nan(values) -> float:
    """The mean of a sequence of floats (inf if any is inf), NaN for none."""
    values = list(values)
    return math.fsum(values) / len(values) if values else math.nan
