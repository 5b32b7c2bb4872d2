"""Colour correction of uint8 sRGB frames with a camera's 3 x terms matrix, as the official kit does it.

The official ``nersemble_data.util.color_correction.correct_color`` (``nersemble-data`` 0.0.6) takes each
pixel from uint8 to [0, 1], decodes sRGB to linear light, expands (R, G, B) into the ``terms`` root-polynomial
terms of Cheung et al. (2004) (colour-science's ``matrix_augmented_Cheung2004``, ``terms`` = the matrix's
last dimension), multiplies by the matrix, encodes sRGB and stores ``clip(V * 255, 0, 255)`` truncated to
uint8. Here the same steps run without per-pixel Python and without colour-science, in one pass over each
row of pixels (the numba kernel of ``colour_kernel``, on a thread pool; with torch on a GPU when a caller asks
for one, ``colour_gpu``): the decode is a 256-entry table, the polynomial and the matrix product run in float32
(:class:`MonomialPlan`), and the encode, clip and truncation together are one look-up in a table over float32
bit patterns and two integer operations (:func:`srgb_encoding_table`). The result equals the official one
within one level per channel (float32 against float64 near a level boundary). With ``as_float`` the same
arithmetic ends in the sRGB encoding instead, unclipped: the official result for the float input ``frames / 255``
(what its ``load_image`` returns without ``as_uint8``).

At a resolution level the frame is area-averaged first and corrected after (:func:`correct_colour_at_level`),
the order of the official ``load_image(..., downscale_factor=...)``; ``docs/colour.md`` says why.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, NamedTuple

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
ENCODING_SHIFT = 15  # float32 bit pattern >> 15: 8 mantissa bits left
ENCODING_BINS = 1 << 15  # every positive float32 below 2.0
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
    in the bin reaches ``t`` and ``L`` below it, the level of ``b`` (``colour_kernel.encode_levels``).
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
                   as_float: bool = False, threads: int | None = None) -> np.ndarray:
    """Colour-corrected copy of uint8 sRGB ``frames`` (H, W, 3) or (N, H, W, 3) with one camera's 3 x terms
    ``matrix``, equal to the official ``correct_color`` within one level per channel.

    ``device``: None or "cpu" (default): the fused CPU kernel (``colour_kernel``) on ``threads`` threads (default:
    every CPU on the main thread, one on any other, e.g. in a dask task); a torch device such as "cuda": torch
    on that device. ``as_float``: float64 sRGB values instead, neither clipped nor truncated, as the official
    ``correct_color(frames / 255, matrix)`` gives them (within 1e-5: float32 arithmetic).
    """
    plan = _monomial_plan(check_matrix(matrix))
    _check_frames(frames)
    _check_threads(threads)
    corrected = np.empty(frames.shape, dtype=np.float64 if as_float else np.uint8)
    if _on_cpu(device):
        _correct_on_cpu(frames, plan, corrected, as_float, threads)
    else:
        import torch

        from .colour_gpu import DeviceCorrection

        correction = DeviceCorrection(plan, torch.device(device))
        for frame, out in zip(frames.reshape(-1, *frames.shape[-3:]), corrected.reshape(-1, *frames.shape[-3:])):
            correction(frame, out, as_float)
    return corrected


def correct_colour_at_level(frames: np.ndarray, matrix: np.ndarray, level: int,
                            device: "str | torch.device | None" = None, *, threads: int | None = None,
                            out: np.ndarray | None = None) -> np.ndarray:
    """The corrected frame(s) at resolution ``level``: uint8 ``frames`` (H, W, 3) or (N, H, W, 3) area-averaged
    over ``level`` x ``level`` boxes exactly as the store's levels are (``levels.resample.block_mean``, in sRGB),
    then colour-corrected (``device`` and ``threads`` as :func:`correct_colour`), the order of the official
    ``load_image(..., downscale_factor=level)``. ``out`` (level > 1): the C-contiguous uint8 array of the
    result's shape to average into and, on the CPU, correct in (a frame loop's one buffer)."""
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level < 1:
        raise InputDataError(f"The resolution level {level!r} is invalid; expected an integer of at least 1.")
    ccm = check_matrix(matrix)
    _check_frames(frames)
    _check_threads(threads)
    if level == 1:
        return correct_colour(frames, ccm, device, threads=threads)
    from .levels.resample import block_mean  # here: the levels package imports xarray, zarr and dask

    one = frames.ndim == 3
    averaged = block_mean(frames[None] if one else frames, int(level), out[None] if one and out is not None else out)
    averaged = averaged[0] if one else averaged
    if not _on_cpu(device):
        return correct_colour(averaged, ccm, device, threads=threads)
    # corrected in place: the kernel reads each row whole before writing it, and a frame needs no second buffer
    _correct_on_cpu(averaged, _monomial_plan(ccm), averaged, False, threads)
    return averaged if out is None else out


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


def _check_threads(threads: object) -> None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                or threads < 1):
        raise InputDataError(f"The thread count {threads!r} is invalid; expected an integer of at least 1.")


def _exponents(term: str) -> Exponents:
    """(a, b, c) of the term R**a * G**b * B**c; "1" is (0, 0, 0)."""
    powers = dict.fromkeys("RGB", 0)
    for letter, power in _FACTOR.findall(term):
        powers[letter] += int(power or 1)
    return powers["R"], powers["G"], powers["B"]


class MonomialPlan(NamedTuple):
    """A matrix as the kernels apply it: ``offset`` (3,) plus ``matrix`` (3, M) times M monomials of the linear
    channels, where monomials 0..2 are R, G, B and monomial k >= 3 is monomial ``factors[k, 0]`` times channel
    ``factors[k, 1]``. A monomial that only builds another one (RG for RGB in the 5 terms) has a zero column."""

    factors: np.ndarray  # (M, 2) int64
    matrix: np.ndarray  # (3, M) float32
    offset: np.ndarray  # (3,) float32: the constant term's column


def _monomial_plan(ccm: np.ndarray) -> MonomialPlan:
    """The plan of a checked (3, terms) matrix: every monomial computed once, from the one of lower degree."""
    monomials: list[Exponents] = list(_UNIT)
    factors = [(axis, axis) for axis in range(3)]

    def index(exponents: Exponents) -> int:
        if exponents not in monomials:
            axis = next(i for i in range(3) if exponents[i])
            lower = index(tuple(e - (i == axis) for i, e in enumerate(exponents)))  # type: ignore[arg-type]
            monomials.append(exponents)
            factors.append((lower, axis))
        return monomials.index(exponents)

    weights: dict[int, np.ndarray] = {}
    offset = np.zeros(3)
    for column, term in zip(ccm.T, CHEUNG2004_TERMS[ccm.shape[1]]):
        exponents = _exponents(term)
        if exponents == (0, 0, 0):
            offset += column
        else:
            weights[index(exponents)] = column
    matrix = np.zeros((3, len(monomials)), dtype=np.float32)
    for k, column in weights.items():
        matrix[:, k] = column
    return MonomialPlan(np.array(factors, dtype=np.int64), matrix, offset.astype(np.float32))


def _on_cpu(device: "str | torch.device | None") -> bool:
    return device is None or str(device).split(":")[0] == "cpu"


def _correct_on_cpu(frames: np.ndarray, plan: MonomialPlan, out: np.ndarray, as_float: bool,
                    threads: int | None) -> None:
    """Correct uint8 ``frames`` into ``out`` (C order, their shape) with the CPU kernel."""
    if out.size == 0:
        return
    from . import colour_kernel  # here: importing numba takes a third of a second

    pixels = np.ascontiguousarray(frames).reshape(-1, frames.shape[-2], 3)  # rows of every frame
    rows = out.reshape(pixels.shape)
    if as_float:
        kernel, tables = colour_kernel.correct_values, (_tables()[0],)
    else:
        kernel, tables = colour_kernel.correct_levels, (*_tables(), ENCODING_SHIFT)
    colour_kernel.run_rows(kernel, pixels, (*tables, *plan), rows, int(threads or colour_kernel.default_threads()))


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """The float32 decoding table and the int32 encoding table, made once."""
    return srgb_decoding_table().astype(np.float32), srgb_encoding_table()
