"""Per-frame image metrics on torch tensors (CPU or GPU): PSNR, SSIM and compositing on white.

Frames are float64 tensors (k, 3, H, W) with values in [0, 1]; results are one value per frame.
"""

from __future__ import annotations

import math

import numpy as np
import torch

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 1.0


def psnr(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR in dB for data range 1: ``10 log10(1 / MSE)``; +inf where the frames are equal."""
    mse = (prediction - truth).square_().mean(dim=tuple(range(1, prediction.ndim)))
    return 10 * torch.log10(DATA_RANGE**2 / mse)  # 1 / 0 -> inf


def _gaussian_window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    radius = SSIM_WINDOW // 2
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    weights = torch.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    return weights / weights.sum()


def _blur(images: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of (k, c, H, W) over the valid region (no padding), per channel."""
    channels = images.shape[1]
    rows = window.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    cols = window.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    return torch.nn.functional.conv2d(torch.nn.functional.conv2d(images, rows, groups=channels), cols, groups=channels)


def _ssim_map_mean(mu_x, mu_y, xx, yy, xy):
    """Mean of the SSIM map from the blurred moments (numpy arrays or tensors), over the last two axes."""
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return score.mean(axis=(-2, -1)) if isinstance(score, np.ndarray) else score.mean(dim=(-2, -1))


def _ssim_cpu(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(k,) SSIM of (k, c, H, W) float64 arrays with scipy's Gaussian filter, one 2-D map at a time (what
    scikit-image does; torch's depthwise convolution is several times slower on the CPU)."""
    from scipy.ndimage import gaussian_filter

    radius = SSIM_WINDOW // 2
    inside = (slice(radius, -radius), slice(radius, -radius))

    def blur(image: np.ndarray) -> np.ndarray:
        # scipy's kernel for this sigma and truncation is the same normalised 11 taps as the GPU path's
        return gaussian_filter(image, SSIM_SIGMA, truncate=radius / SSIM_SIGMA)[inside]

    scores = np.empty(prediction.shape[:2])
    for frame in range(prediction.shape[0]):
        for channel in range(prediction.shape[1]):
            x, y = prediction[frame, channel], truth[frame, channel]
            scores[frame, channel] = _ssim_map_mean(blur(x), blur(y), blur(x * x), blur(y * y), blur(x * y))
    return scores.mean(axis=1)


def ssim(prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-frame SSIM: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 1, per channel then averaged.

    The SSIM map is averaged over the pixels whose whole window lies inside the frame (what scikit-image's
    ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)`` averages after cropping).
    """
    if min(prediction.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels.")
    if prediction.device.type == "cpu":
        return torch.from_numpy(_ssim_cpu(prediction.numpy(), truth.numpy()))
    window = _gaussian_window(prediction.device, prediction.dtype)
    stacked = torch.cat([prediction, truth, prediction * prediction, truth * truth, prediction * truth], dim=1)
    return _ssim_map_mean(*_blur(stacked, window).split(prediction.shape[1], dim=1)).mean(dim=1)


def on_white(images: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Composite frames on white with ``alpha`` (k, 1, H, W) in [0, 1]: ``image * alpha + (1 - alpha)``."""
    return images * alpha + (1 - alpha)


def mean_or_nan(values) -> float:
    """The mean of a sequence of floats (inf if any is inf), NaN for none."""
    values = list(values)
    return math.fsum(values) / len(values) if values else math.nan
