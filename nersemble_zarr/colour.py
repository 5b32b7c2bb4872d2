"""Colour correction of uint8 sRGB frames with a camera's 3 x terms matrix, as the official kit does it.

The official ``nersemble_data.util.color_correction.correct_color`` (``nersemble-data`` 0.0.6) takes each
pixel from uint8 to [0, 1], decodes sRGB to linear light, expands (R, G, B) into the ``terms`` root-polynomial
terms of Cheung et al. (2004) (colour-science's ``matrix_augmented_Cheung2004``, ``terms`` = the matrix's
last dimension), multiplies by the matrix, encodes sRGB and stores ``clip(V * 255, 0, 255)`` truncated to
uint8. Here the same steps run without per-pixel Python and without colour-science: the decode is a 256-entry
table, the polynomial and the matrix product run in float32 with torch on its CPU threads (on the GPU when
one is present), chunk by chunk so memory stays bounded, and the encode is the sRGB formula followed by the
same clip and truncation. The result equals the official one within one level per channel (float32 against
float64 near a level boundary).

At a resolution level the frame is area-averaged first and corrected after (:func:`correct_colour_at_level`),
the order of the official ``load_image(..., downscale_factor=...)``; ``docs/colour.md`` says why.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputDataError
from .levels.resample import block_mean

if TYPE_CHECKING:
    import torch

# The terms of matrix_augmented_Cheung2004 (colour-science 0.4), in its order: "R2G" is R**2 * G, "1" the constant.
CHEUNG2004_TERMS: dict[int, tuple[str, ...]] = {
    3: ("R", "G", "B"),
    4: ("R", "G", "B", "1"),
    5: ("R", "G", "B", "RGB", "1"),
    7: ("R", "G", "B", "RG", "RB", "GB", "1"),
    8: ("R", "G", "B", "RG", "RB", "GB", "RGB", "1"),
    10: ("R", "G", "B", "RG", "RB", "GB", "R2", "G2", "B2", "1"),
    11: ("R", "G", "B", "RG", "RB", "GB", "R2", "G2", "B2", "RGB", "1"),
    14: ("R", "G", "B", "RG", "RB", "GB", "R2", "G2", "B2", "RGB", "R3", "G3", "B3", "1"),
    16: ("R", "G", "B", "RG", "RB", "GB", "R2", "G2", "B2", "RGB", "R2G", "G2B", "B2R", "R3", "G3", "B3"),
    17: ("R", "G", "B", "RG", "RB", "GB", "R2", "G2", "B2", "RGB", "R2G", "G2B", "B2R", "R3", "G3", "B3", "1"),
    19: ("R", "G", "B", "RG", "RB", "GB", "R2", "G2", "B2", "RGB", "R2G", "G2B", "B2R", "R2B", "G2R", "B2G",
         "R3", "G3", "B3"),
    20: ("R", "G", "B", "RG", "RB", "GB", "R2", "G2", "B2", "RGB", "R2G", "G2B", "B2R", "R2B", "G2R", "B2G",
         "R3", "G3", "B3", "1"),
    22: ("R", "G", "B", "RG", "RB", "GB", "R2", "G2", "B2", "RGB", "R2G", "G2B", "B2R", "R2B", "G2R", "B2G",
         "R3", "G3", "B3", "R2GB", "RG2B", "RGB2"),
    35: ("R", "G", "B", "RG", "RB", "GB", "R2", "G2", "B2", "RGB", "R2G", "G2B", "B2R", "R2B", "G2R", "B2G",
         "R3", "G3", "B3", "R3G", "R3B", "G3R", "G3B", "B3R", "B3G", "R2GB", "RG2B", "RGB2", "R2G2", "R2B2", "G2B2",
         "R4", "G4", "B4", "1"),
}
SUPPORTED_TERMS = tuple(CHEUNG2004_TERMS)
CPU_CHUNK_PIXELS = 1 << 16  # a chunk's float32 working set stays within a core's cache
GPU_CHUNK_PIXELS = 1 << 22

_FACTOR = re.compile(r"([RGB])([0-9]?)")
Exponents = tuple[int, int, int]
_UNIT: tuple[Exponents, ...] = ((1, 0, 0), (0, 1, 0), (0, 0, 1))  # R, G, B


def srgb_decoding_table() -> np.ndarray:
    """Linear light (float64) of each uint8 sRGB level 0..255: IEC 61966-2-1, as ``colour.cctf_decoding``."""
    value = np.arange(256) / 255.0
    return np.where(value <= 0.04045, value / 12.92, ((value + 0.055) / 1.055) ** 2.4)


def matrix_problem(matrix: object) -> str | None:
    """What is wrong with a colour correction matrix (a phrase that follows "it"), or None when it is a finite
    real 3 x terms matrix with a terms value of Cheung 2004."""
    try:
        array = np.asarray(matrix)
    except (ValueError, TypeError) as error:  # ragged nested lists
        return f"is not a rectangular array of numbers ({error})"
    if array.dtype.kind not in "iuf":
        return f"holds {array.dtype} values, not real numbers"
    terms = ", ".join(map(str, SUPPORTED_TERMS))
    if array.ndim != 2 or array.shape[0] != 3 or array.shape[1] not in CHEUNG2004_TERMS:
        return f"has shape {array.shape}; expected (3, terms) with terms one of {terms}"
    if not np.all(np.isfinite(array.astype(np.float64))):
        return "holds NaN or infinite values"
    return None


def check_matrix(matrix: object) -> np.ndarray:
    """``matrix`` as a float64 (3, terms) array, or an InputDataError in one sentence naming what is wrong."""
    problem = matrix_problem(matrix)
    if problem is not None:
        raise InputDataError(f"The colour correction matrix {problem}.")
    return np.asarray(matrix, dtype=np.float64)


def correct_colour(frames: np.ndarray, matrix: np.ndarray, device: "str | torch.device | None" = None) -> np.ndarray:
    """Colour-corrected copy of uint8 sRGB ``frames`` (H, W, 3) or (N, H, W, 3) with one camera's 3 x terms
    ``matrix``, equal to the official ``correct_color`` within one level per channel.

    ``device``: where the arithmetic runs (default: the GPU when torch sees one, else the CPU threads).
    """
    import torch

    ccm = check_matrix(matrix)
    _check_frames(frames)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    chunk = GPU_CHUNK_PIXELS if device.type == "cuda" else CPU_CHUNK_PIXELS
    pixels = torch.from_numpy(np.ascontiguousarray(frames).reshape(-1, 3))
    corrected = torch.empty_like(pixels)
    correction = _Correction(ccm, device)
    with torch.inference_mode():
        for start in range(0, pixels.shape[0], chunk):
            stop = min(start + chunk, pixels.shape[0])
            corrected[start:stop].copy_(correction(pixels[start:stop].to(device, non_blocking=True)).T)
    return corrected.numpy().reshape(frames.shape)


def correct_colour_at_level(frames: np.ndarray, matrix: np.ndarray, level: int,
                            device: "str | torch.device | None" = None) -> np.ndarray:
    """The corrected frame(s) at resolution ``level``: uint8 ``frames`` (H, W, 3) or (N, H, W, 3) area-averaged
    over ``level`` x ``level`` boxes exactly as the store's levels are (``levels.resample.block_mean``, in sRGB),
    then colour-corrected, the order of the official ``load_image(..., downscale_factor=level)``."""
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level < 1:
        raise InputDataError(f"The resolution level {level!r} is invalid; expected an integer of at least 1.")
    ccm = check_matrix(matrix)
    _check_frames(frames)
    if level > 1:
        batch = frames if frames.ndim == 4 else frames[None]
        averaged = block_mean(batch, int(level))
        frames = averaged if frames.ndim == 4 else averaged[0]
    return correct_colour(frames, ccm, device)


def _check_frames(frames: object) -> None:
    if not isinstance(frames, np.ndarray):
        raise InputDataError(f"The frames to colour-correct are a {type(frames).__name__}, not a numpy array.")
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
        raise InputDataError(f"The frames to colour-correct are {frames.dtype} of shape {frames.shape}; expected "
                             "uint8 sRGB of shape (H, W, 3) or (N, H, W, 3).")


def _exponents(term: str) -> Exponents:
    """(a, b, c) of the term R**a * G**b * B**c; "1" is (0, 0, 0)."""
    powers = dict.fromkeys("RGB", 0)
    for letter, power in _FACTOR.findall(term):
        powers[letter] += int(power or 1)
    return powers["R"], powers["G"], powers["B"]


class _Correction:
    """One matrix on one device: uint8 pixels (n, 3) in, corrected uint8 channels (3, n) out."""

    def __init__(self, ccm: np.ndarray, device: "torch.device") -> None:
        import torch

        terms = [_exponents(term) for term in CHEUNG2004_TERMS[ccm.shape[1]]]
        constant = [k for k, exponents in enumerate(terms) if exponents == (0, 0, 0)]
        self.monomials = [exponents for exponents in terms if exponents != (0, 0, 0)]
        varying = [k for k in range(len(terms)) if k not in constant]
        as_tensor = lambda array: torch.as_tensor(array, dtype=torch.float32, device=device)
        self.matrix = as_tensor(ccm[:, varying])  # (3, monomials)
        self.offset = as_tensor(ccm[:, constant].sum(axis=1)[:, None])  # (3, 1): the constant term's column
        self.decode = as_tensor(srgb_decoding_table())

    def __call__(self, pixels: "torch.Tensor") -> "torch.Tensor":
        import torch

        n = pixels.shape[0]
        expanded = torch.empty((len(self.monomials), n), dtype=torch.float32, device=pixels.device)
        # Rows 0..2 are the terms R, G, B: linear light, planar, one table look-up per value.
        torch.index_select(self.decode, 0, pixels.T.reshape(-1).long(), out=expanded[:3].view(-1))
        known: dict[Exponents, torch.Tensor] = {unit: expanded[axis] for axis, unit in enumerate(_UNIT)}
        for row in range(3, len(self.monomials)):
            _monomial(self.monomials[row], known, out=expanded[row])
        return _srgb_encode_uint8(torch.addmm(self.offset, self.matrix, expanded))


def _monomial(exponents: Exponents, known: dict, out: "torch.Tensor | None" = None) -> "torch.Tensor":
    """R**a * G**b * B**c of the planar channels in ``known``, where every product computed is kept."""
    import torch

    if exponents not in known:
        axis = next(i for i in range(3) if exponents[i])
        lower = tuple(e - (i == axis) for i, e in enumerate(exponents))
        known[exponents] = torch.mul(_monomial(lower, known), known[_UNIT[axis]], out=out)
    return known[exponents]


_JUNCTION = 0.0031308  # linear light where the sRGB curve turns from the linear piece to the power piece
_ENCODE_LINEAR = 12.92 * 255.0
_ENCODE_POWER = (1.055 * 255.0, 0.055 * 255.0, 1 / 2.4)  # 255 * (1.055 * L ** (1 / 2.4) - 0.055)


def _srgb_encode_uint8(linear: "torch.Tensor") -> "torch.Tensor":
    """uint8 of clip(255 * sRGB(linear), 0, 255), truncated as numpy's astype truncates (IEC 61966-2-1, as
    ``colour.cctf_encoding``); ``linear`` is overwritten."""
    import torch

    scale, shift, exponent = _ENCODE_POWER
    on_linear_piece = linear <= _JUNCTION
    power = linear.clamp_min(_JUNCTION).pow_(exponent).mul_(scale).sub_(shift)
    encoded = torch.where(on_linear_piece, linear.mul_(_ENCODE_LINEAR), power, out=power)
    return encoded.clamp_(0, 255).to(torch.uint8)
