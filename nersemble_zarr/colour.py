"""Colour correction of uint8 sRGB frames with a camera's 3 x terms matrix, as the official kit does it.

The official ``nersemble_data.util.color_correction.correct_color`` (``nersemble-data`` 0.0.6) takes each
pixel from uint8 to [0, 1], decodes sRGB to linear light, expands (R, G, B) into the ``terms`` root-polynomial
terms of Cheung et al. (2004) (colour-science's ``matrix_augmented_Cheung2004``, ``terms`` = the matrix's
last dimension), multiplies by the matrix, encodes sRGB and stores ``clip(V * 255, 0, 255)`` truncated to
uint8. Here the same steps run without per-pixel Python and without colour-science: the decode is a 256-entry
table, the polynomial and the matrix product run in float32 with torch on its CPU threads (on the GPU when
one is present), chunk by chunk so memory stays bounded, and the encode, clip and truncation together are
one look-up in a table over float32 bit patterns and two integer operations (:func:`srgb_encoding_table`).
The result equals the official one within one level per channel (float32 against float64 near a level
boundary). With ``as_float`` the same
arithmetic ends in the sRGB encoding instead, unclipped: the official result for the float input ``frames / 255``
(what its ``load_image`` returns without ``as_uint8``).

At a resolution level the frame is area-averaged first and corrected after (:func:`correct_colour_at_level`),
the order of the official ``load_image(..., downscale_factor=...)``; ``docs/colour.md`` says why.
"""

from __future__ import annotations

import functools
import re
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from . import schema
from .errors import ConfigError, InputDataError, StoreError
from .real_values import non_real

if TYPE_CHECKING:
    import torch
    import xarray as xr

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

ENCODING_SHIFT = 15  # float32 bit pattern >> 15: 8 mantissa bits left
ENCODING_BINS = 1 << 15  # every positive float32 below 2.0
_LARGEST_BITS = (2 << 29) - 1  # the bit pattern of the largest float32 below 2.0 (level 255)
_LEVEL_BYTE = 2 if sys.byteorder == "little" else 1  # the byte of an int32 that holds bits 16..23
_FACTOR = re.compile(r"([RGB])([0-9]?)")
Exponents = tuple[int, int, int]
_UNIT: tuple[Exponents, ...] = ((1, 0, 0), (0, 1, 0), (0, 0, 1))  # R, G, B


def srgb_decoding_table() -> np.ndarray:
    """Linear light (float64) of each uint8 sRGB level 0..255: IEC 61966-2-1, as ``colour.cctf_decoding``."""
    value = np.arange(256) / 255.0
    return np.where(value <= 0.04045, value / 12.92, ((value + 0.055) / 1.055) ** 2.4)


def srgb_encoding_table() -> np.ndarray:
    """The int32 table that turns linear light into the official uint8 level, trunc(clip(255 * sRGB(L), 0, 255)).

    Level k starts where linear light reaches ``srgb_decoding_table()[k]`` (as float32). A positive float32's bit
    pattern ``b`` shifted right by ``ENCODING_SHIFT`` numbers bins 2**-8 wide relative to their values, narrower
    than the relative gap between two level starts (over 0.8 %), so each bin holds at most one start. For the
    bin's level ``L`` (at its lowest value) and the offset ``t`` of the next start inside it (2**15 when none is),
    the entry is ``((L + 1) << 16) - t - (bin << 15)``: then ``(entry + b) >> 16`` is ``L + 1`` where ``b``'s offset
    in the bin reaches ``t`` and ``L`` below it, the level of ``b`` (:func:`_srgb_encode_uint8`).
    """
    starts = srgb_decoding_table()[1:].astype(np.float32)  # levels 1..255
    first_bits = np.arange(ENCODING_BINS, dtype=np.int64) << ENCODING_SHIFT
    start_level = np.searchsorted(starts, first_bits.astype(np.uint32).view(np.float32), side="right")
    next_start = np.append(starts, np.float32(np.inf))[start_level].view(np.int32)
    offset = np.minimum(next_start - first_bits, 1 << ENCODING_SHIFT)
    return (((start_level + 1) << 16) - offset - first_bits).astype(np.int32)


def matrix_problem(matrix: object) -> str | None:
    """What is wrong with a colour correction matrix (a phrase that follows "it"), or None when it is a finite
    real 3 x terms matrix with a terms value of Cheung 2004."""
    try:
        array = np.asarray(matrix)
    except (ValueError, TypeError):  # ragged nested lists
        return "is not a rectangular array of numbers (its rows differ in length)"
    if non_real(array.dtype) is not None:
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


def correct_colour(frames: np.ndarray, matrix: np.ndarray, device: "str | torch.device | None" = None, *,
                   as_float: bool = False) -> np.ndarray:
    """Colour-corrected copy of uint8 sRGB ``frames`` (H, W, 3) or (N, H, W, 3) with one camera's 3 x terms
    ``matrix``, equal to the official ``correct_color`` within one level per channel.

    ``device``: where the arithmetic runs (default: the GPU when torch sees one, else the CPU threads).
    ``as_float``: float64 sRGB values instead, neither clipped nor truncated, as the official
    ``correct_color(frames / 255, matrix)`` gives them (within 1e-5: float32 arithmetic).
    """
    import torch

    ccm = check_matrix(matrix)
    _check_frames(frames)
    correction = _Correction(ccm, torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")), as_float)
    batch = frames.reshape(-1, *frames.shape[-3:])
    # C order: each frame's reshape below is a view
    corrected = np.empty(batch.shape, dtype=np.float64 if as_float else np.uint8)
    # On the CPU, chunks run in parallel on torch's threads, each op single-threaded: no OpenMP barrier per op,
    # which a loaded machine (a thread descheduled at every barrier) would turn into seconds per frame.
    workers = 1 if correction.device.type == "cuda" else torch.get_num_threads()
    with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        for frame, out in zip(batch, corrected):
            _correct_frame(frame, out, correction, pool)
    return corrected.reshape(frames.shape)


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
        from .levels.resample import block_mean  # here: the levels package imports xarray, zarr and dask

        batch = frames if frames.ndim == 4 else frames[None]
        averaged = block_mean(batch, int(level))
        frames = averaged if frames.ndim == 4 else averaged[0]
    return correct_colour(frames, ccm, device)


def stored_colour_correction(dataset: "xr.Dataset", group: str) -> np.ndarray:
    """The float64 (serial, 3, terms) colour correction matrices of a store group's Dataset (its
    ``colour_correction`` coordinate), for correcting its frames when they are read; ``group`` names it in
    messages (e.g. "store group dataset/17/EXP-1-head").

    A ConfigError in one sentence naming the group when its frames are colour-corrected already (attribute
    ``colour_corrected``) or it holds no matrices; a StoreError when the stored matrices are unusable.
    """
    if dataset.attrs.get(schema.COLOUR_CORRECTED_ATTR):
        raise ConfigError(f"The frames of {group} are colour-corrected already; read them without colour_correct.")
    if schema.COLOUR_CORRECTION not in dataset.variables:
        raise ConfigError(f"{group[0].upper()}{group[1:]} holds no colour correction matrices (no "
                          f"{schema.COLOUR_CORRECTION} coordinate), so its frames cannot be colour-corrected.")
    stored = dataset[schema.COLOUR_CORRECTION]
    dims = (schema.SERIAL, schema.COLOUR_ROW, schema.COLOUR_TERM)
    if stored.dims != dims:
        raise StoreError(f"The {schema.COLOUR_CORRECTION} coordinate of {group} has dimensions {stored.dims}; "
                         f"expected {dims}.")
    matrices = np.asarray(stored.values)
    for serial, matrix in zip(dataset[schema.SERIAL].values, matrices):
        problem = matrix_problem(matrix)
        if problem is not None:
            raise StoreError(f"The colour correction matrix of camera {serial} in {group} {problem}.")
    return matrices.astype(np.float64)


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


def _correct_frame(frame: np.ndarray, out: np.ndarray, correction: "_Correction", pool: ThreadPoolExecutor) -> None:
    """Correct one (H, W, 3) frame into ``out``, chunk by chunk on ``pool``'s threads."""
    import torch

    pixels, corrected = _tensor(np.ascontiguousarray(frame).reshape(-1, 3)), torch.from_numpy(out.reshape(-1, 3))
    chunk = GPU_CHUNK_PIXELS if correction.device.type == "cuda" else CPU_CHUNK_PIXELS

    @torch.inference_mode()
    def correct_chunk(start: int) -> None:
        rows = pixels[start:start + chunk].to(correction.device)
        # channel planes (3, n) of int32 indices into the decoding table, in one pass
        planes = rows.t().to(torch.int32, memory_format=torch.contiguous_format)
        correction(planes, out=corrected[start:start + chunk])

    for _ in pool.map(correct_chunk, range(0, len(pixels), chunk)):
        pass


def _tensor(array: np.ndarray) -> "torch.Tensor":
    """A CPU tensor sharing ``array``'s memory (read only here), without torch's warning about read-only arrays."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


class _Correction:
    """One matrix on one device: int32 uint8-level channel planes (3, n) in, corrected pixels (n, 3) written to
    ``out``: uint8 levels, or sRGB values (unclipped) when ``as_float``."""

    def __init__(self, ccm: np.ndarray, device: "torch.device", as_float: bool = False) -> None:
        import torch

        terms = [_exponents(term) for term in CHEUNG2004_TERMS[ccm.shape[1]]]
        constant = [k for k, exponents in enumerate(terms) if exponents == (0, 0, 0)]
        varying = [k for k in range(len(terms)) if k not in constant]
        self.device, self.as_float = device, as_float
        self.monomials = [terms[k] for k in varying]  # R, G, B first, as in every Cheung 2004 expansion
        as_tensor = lambda array: torch.as_tensor(array, dtype=torch.float32, device=device)
        self.matrix = as_tensor(ccm[:, varying])  # (3, monomials)
        self.offset = as_tensor(ccm[:, constant].sum(axis=1)[:, None])  # (3, 1): the constant term's column
        self.decode, self.encoding = _device_tables(device)

    def __call__(self, planes: "torch.Tensor", out: "torch.Tensor") -> None:
        import torch

        n = planes.shape[1]
        expanded = torch.empty((len(self.monomials), n), dtype=torch.float32, device=planes.device)
        # Rows 0..2 are the terms R, G, B: linear light, one table look-up per value.
        torch.index_select(self.decode, 0, planes.view(-1), out=expanded[:3].view(-1))
        known: dict[Exponents, torch.Tensor] = {unit: expanded[axis] for axis, unit in enumerate(_UNIT)}
        for row in range(3, len(self.monomials)):
            _monomial(self.monomials[row], known, out=expanded[row])
        linear = torch.addmm(self.offset, self.matrix, expanded)
        corrected = _srgb_encode_float(linear) if self.as_float else _srgb_encode_uint8(linear, self.encoding)
        rows = corrected.unbind(0)  # interleaved by torch.stack: far faster than a transposed copy
        if out.device == corrected.device and out.dtype == corrected.dtype:
            torch.stack(rows, dim=1, out=out)
        else:
            out.copy_(torch.stack(rows, dim=1))


@functools.lru_cache(maxsize=4)
def _device_tables(device: "torch.device") -> tuple["torch.Tensor", "torch.Tensor"]:
    """The float32 decoding table and the int32 encoding table on ``device``, made once per device."""
    import torch

    return (torch.as_tensor(srgb_decoding_table(), dtype=torch.float32, device=device),
            torch.as_tensor(srgb_encoding_table(), device=device))


def _monomial(exponents: Exponents, known: dict, out: "torch.Tensor | None" = None) -> "torch.Tensor":
    """R**a * G**b * B**c of the planar channels in ``known``, where every product computed is kept."""
    import torch

    if exponents not in known:
        axis = next(i for i in range(3) if exponents[i])
        lower = tuple(e - (i == axis) for i, e in enumerate(exponents))
        known[exponents] = torch.mul(_monomial(lower, known), known[_UNIT[axis]], out=out)
    return known[exponents]


def _srgb_encode_float(linear: "torch.Tensor") -> "torch.Tensor":
    """sRGB encoding of linear light as ``colour.cctf_encoding`` (IEC 61966-2-1), unclipped: the linear segment
    below 0.0031308, negative values included."""
    import torch

    curve = linear.clamp_min(0.0031308).pow_(1 / 2.4).mul_(1.055).sub_(0.055)
    return torch.where(linear <= 0.0031308, linear * 12.92, curve)


def _srgb_encode_uint8(linear: "torch.Tensor", table: "torch.Tensor") -> "torch.Tensor":
    """uint8 of clip(255 * sRGB(linear), 0, 255) truncated, by :func:`srgb_encoding_table`: a view into an int32
    tensor the shape of ``linear``, whose memory is overwritten. Negative values (and -0.0) clamp to the smallest
    positive float32 (level 0), values from 2.0 (and positive NaN) to the largest below 2.0 (level 255)."""
    import torch

    bits = linear.view(torch.int32).clamp_(1, _LARGEST_BITS)  # float32 order is int32 order for positive values
    packed = table.index_select(0, (bits >> ENCODING_SHIFT).view(-1)).view(bits.shape)
    packed += bits  # the level in bits 16..23
    return packed.view(torch.uint8).unflatten(-1, (-1, 4))[..., _LEVEL_BYTE]
