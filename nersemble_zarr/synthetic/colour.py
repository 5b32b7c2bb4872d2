"""Synthetic inputs of colour correction: camera-like uint8 frames and near-identity 3 x terms matrices.

A frame is a smooth lit background and a skin-toned ellipse with hard edges, sensor noise, and a strip at the
bottom that holds every level 0..255 of every channel against varied other channels; a matrix is what a colour
checker fit gives a well-balanced camera: near the identity on R, G, B, small higher-order and constant terms.
"""

from __future__ import annotations

import numpy as np

from ..colour import CHEUNG2004_TERMS


def camera_like_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A (height, width, 3) uint8 sRGB frame (height >= 16, width >= 256) with all 256 levels of each channel."""
    if height < 16 or width < 256:
        raise ValueError(f"A camera-like frame needs at least 16 x 256 pixels, not {height} x {width}.")
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = rows / height, columns / width
    light = 0.35 + 0.45 * np.exp(-((x - 0.3) ** 2 + (y - 0.2) ** 2) * 3)
    frame = np.stack([light * 0.55, light * 0.6, light * 0.7], axis=-1)  # a grey-blue backdrop
    head = ((x - 0.5) / 0.3) ** 2 + ((y - 0.45) / 0.35) ** 2 < 1
    shading = (0.4 + 0.6 * np.clip(1.2 - ((x - 0.42) ** 2 + (y - 0.38) ** 2) * 4, 0, 1))[head]
    frame[head] = shading[:, None] * np.array([0.92, 0.68, 0.55], dtype=np.float32)  # skin
    frame += rng.normal(0, 0.012, frame.shape).astype(np.float32)  # sensor noise
    pixels = np.clip(frame * 255 + 0.5, 0, 255).astype(np.uint8)
    strip = height - 16
    for channel in range(3):  # rows strip + 5 * channel .. + 4: level = column, the other channels random
        band = pixels[strip + 5 * channel: strip + 5 * channel + 5, :256]
        band[:] = rng.integers(0, 256, band.shape, dtype=np.uint8)
        band[..., channel] = np.arange(256, dtype=np.uint8)
    return pixels


def near_identity_matrix(terms: int, seed: int = 0) -> np.ndarray:
    """A (3, terms) colour correction matrix of a well-balanced camera: R, G, B gains within a few percent of
    one with a little cross-talk, higher-order terms and a constant term of a few thousandths."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0, 0.004, (3, terms))
    matrix[:, :3] = np.eye(3) * rng.uniform(0.93, 1.07, 3) + rng.normal(0, 0.02, (3, 3))
    if CHEUNG2004_TERMS[terms][-1] == "1":
        matrix[:, -1] = rng.normal(0, 0.003, 3)
    return matrix
