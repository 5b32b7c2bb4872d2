"""The official dataset kit's colour correction (``nersemble_data.util.color_correction.correct_color``) in numpy.

A colour matrix of 3 x terms maps the polynomial expansion of Cheung et al. (2004) of linear RGB to corrected
linear RGB; the image is decoded from sRGB before and encoded to sRGB after, as the kit does.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputDataError


def _expansion(rgb: np.ndarray, terms: int) -> np.ndarray:
    """(N, terms) Cheung 2004 expansion of (N, 3) RGB, in the order of colour-science."""
    r, g, b = rgb.T
    one = np.ones_like(r)
    columns = {
        3: (r, g, b),
        4: (r, g, b, one),
        5: (r, g, b, r * g * b, one),
        7: (r, g, b, r * g, r * b, g * b, one),
        8: (r, g, b, r * g, r * b, g * b, r * g * b, one),
        10: (r, g, b, r * g, r * b, g * b, r**2, g**2, b**2, one),
    }
    if terms not in columns:
        raise InputDataError(f"A colour matrix with {terms} terms is not supported; expected one of "
                             f"{', '.join(map(str, columns))}.")
    return np.stack(columns[terms], axis=-1)


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, np.sign(v) * np.abs((v + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.sign(x) * np.abs(x) ** (1 / 2.4) - 0.055)


def correct_color(image: np.ndarray, ccm: np.ndarray) -> np.ndarray:
    """Apply a 3 x terms colour matrix to an (..., 3) image: uint8 in, uint8 out (clipped); float in [0, 1]
    in, float out (not clipped, as the kit's)."""
    is_uint8 = image.dtype == np.uint8
    values = image / 255.0 if is_uint8 else np.asarray(image, dtype=np.float64)
    linear = _srgb_to_linear(values).reshape(-1, 3)
    corrected = (_expansion(linear, ccm.shape[-1]) @ np.asarray(ccm, dtype=np.float64).T).reshape(values.shape)
    encoded = _linear_to_srgb(corrected)
    return np.clip(encoded * 255, 0, 255).astype(np.uint8) if is_uint8 else encoded
