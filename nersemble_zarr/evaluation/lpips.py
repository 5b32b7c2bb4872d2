"""LPIPS (v0.1, AlexNet) without torchvision: the AlexNet feature layers built here, their weights read
from torchvision's file in the torch hub cache, the linear calibration layers shipped with this package
(taken from the ``lpips`` package, BSD-2-Clause, see LPIPS_LICENSE.txt).
"""

from __future__ import annotations

import functools
import os
import pickle
import threading
from pathlib import Path

import numpy as np
import torch
from torch import nn

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
LINEAR_WEIGHTS = Path(__file__).with_name("lpips_alex_v0.1.npz")
# What the LPIPS numbers mean, stated with every result that has them: other tools differ in exactly these.
PROTOCOL = ("LPIPS v0.1 with the AlexNet backbone (the lpips package's LPIPS(net='alex'), not VGG), inputs scaled "
            "from [0, 1] to [-1, 1]")
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# Layers of torchvision's alexnet().features after which LPIPS takes features (relu1..relu5).
_TAPS = (1, 4, 7, 9, 11)


def alexnet_path() -> Path:
    """Where torch looks for torchvision's AlexNet weights: ``$TORCH_HOME/hub/checkpoints/`` (default ~/.cache/torch)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def unavailable_reason() -> str | None:
    """One sentence saying why LPIPS cannot run (the AlexNet weights are missing), or None when it can."""
    path = alexnet_path()
    if path.is_file():
        return None
    return (f"LPIPS is unavailable: torchvision's AlexNet weights {ALEXNET_FILE} are not at {path}; copy the file "
            f"there (or set TORCH_HOME to a folder whose hub/checkpoints/ holds it).")


def alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` layer for layer, so its state dict keys (``0.weight``, ...) match."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


class Lpips(nn.Module):
    """LPIPS distance per frame between image batches (k, 3, H, W) in [0, 1].

    The same arithmetic as the ``lpips`` package's ``LPIPS(net='alex')`` on inputs scaled to [-1, 1], with
    fewer passes over the large feature maps: the scaling to [-1, 1] and the package's shift and scale are one
    multiply-add, each tap is unit-normalised in place, and each linear layer (a 1x1 convolution to one channel
    followed by the mean over pixels) is the mean over pixels of each channel followed by a weighted sum.
    """

    def __init__(self, features: nn.Sequential, linear: list[torch.Tensor]) -> None:
        super().__init__()
        self.features = features
        self.linear = nn.ParameterList([nn.Parameter(weight, requires_grad=False) for weight in linear])
        shift, scale = torch.tensor(_SHIFT).view(1, 3, 1, 1), torch.tensor(_SCALE).view(1, 3, 1, 1)
        # ((2 x - 1) - shift) / scale  =  x * (2 / scale) + (-1 - shift) / scale
        self.register_buffer("gain", 2 / scale)
        self.register_buffer("offset", (-1 - shift) / scale)

    def _taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = torch.addcmul(self.offset, images, self.gain)
        taps = []
        for index, layer in enumerate(self.features[: _TAPS[-1] + 1]):
            x = layer(x)
            if index in _TAPS:
                norm = torch.linalg.vector_norm(x, dim=1, keepdim=True).add_(1e-10)
                taps.append(x / norm)  # not in place: x feeds the next layer
        return taps

    def forward(self, prediction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            total = torch.zeros(len(prediction), device=prediction.device, dtype=torch.float32)
            pairs = zip(self._taps(prediction.float()), self._taps(truth.float()), self.linear)
            for tap_p, tap_t, weight in pairs:
                per_channel = tap_p.sub_(tap_t).square_().mean(dim=(2, 3))  # (k, C)
                total += per_channel @ weight.view(-1)
            return total


_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def _load(path: str, mtime: float, device: str) -> Lpips:
    state = torch.load(path, map_location="cpu", weights_only=True)
    features = alexnet_features()
    features.load_state_dict({key.removeprefix("features."): value for key, value in state.items()
                              if key.startswith("features.")})
    with np.load(LINEAR_WEIGHTS) as lin:
        linear = [torch.from_numpy(lin[f"lin{i}"]) for i in range(len(_TAPS))]
    return Lpips(features, linear).eval().to(device)


def load_lpips(device: str = "cpu") -> Lpips | None:
    """The LPIPS network on ``device`` (loaded once per process and weights file), or None when the AlexNet
    weights are not in the hub cache (``unavailable_reason`` says so)."""
    path = alexnet_path()
    if not path.is_file():
        return None
    with _lock:
        try:
            return _load(os.fspath(path), path.stat().st_mtime, device)
        except (RuntimeError, OSError, KeyError, ValueError, pickle.UnpicklingError, EOFError) as error:
            from ..errors import InputDataError

            raise InputDataError(
                f"{path} is not torchvision's AlexNet weights file ({type(error).__name__}); replace it with "
                f"{ALEXNET_FILE}."
            ) from error
