"""Frames as files: compositing the store's premultiplied RGB onto a background, PNG and npz files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..atomic import write_atomic

BACKGROUNDS = ("black", "white", "none")
PNG_LEVEL = 1  # zlib level: about 4% larger files than level 3 and clearly faster to write


def composite(image: np.ndarray, alpha: np.ndarray, background: str) -> np.ndarray:
    """The picture to save for one frame: (H, W, 3) RGB on ``background``, or (H, W, 4) RGBA for 'none'.

    The store's RGB is premultiplied (colour * alpha over black), so compositing onto a background b is
    ``rgb + b * (1 - alpha)``, not ``rgb * alpha + ...``. PNG alpha is straight (not premultiplied), so the
    RGBA picture divides the colour by alpha. Wherever alpha is 0 the colour is dropped (video noise).
    """
    image = np.where((alpha > 0)[..., None], image, 0).astype(np.uint8)
    if background == "black":
        return image
    if background == "white":
        return np.minimum(image.astype(np.uint16) + (255 - alpha)[..., None], 255).astype(np.uint8)
    if background == "none":
        a = alpha.astype(np.uint32)[..., None]
        straight = np.where(a > 0, (image.astype(np.uint32) * 255 + a // 2) // np.maximum(a, 1), 0)
        return np.concatenate([np.minimum(straight, 255).astype(np.uint8), alpha[..., None]], axis=-1)
    raise ValueError(f"Unknown background {background!r}; expected one of {', '.join(BACKGROUNDS)}.")


def write_png(path: Path, picture: np.ndarray) -> None:
    """Encode an (H, W), (H, W, 3) or (H, W, 4) uint8 picture as PNG and write it atomically."""
    import imagecodecs

    write_atomic(path, imagecodecs.png_encode(np.ascontiguousarray(picture), level=PNG_LEVEL))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays as an uncompressed npz, atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue())
