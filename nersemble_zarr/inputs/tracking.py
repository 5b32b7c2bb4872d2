"""FLAME tracking ``.npz`` files, read member by member with explicit limits instead of ``np.load``.

A zip member is read only if it is stored or deflated and not encrypted, and its ``.npy`` header only if
the array it declares has exactly the bytes the member holds, which a deflated member can hold only within
deflate's largest ratio of its compressed bytes, which must lie inside the file: no header can make the
reader allocate more than the file could expand to. Object (pickled) arrays are refused from their
header and never loaded; complex ones are refused, not cast. After the cast to the stored dtypes
(float32 parameters, int64 frame indices) every value must be finite, and the frame indices whole,
unique and in ``0..MAX_TIMESTEP``.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .. import schema
from ..errors import shown
from ..real_values import non_real
from .files import regular_file
from .metadata import MAX_TIMESTEP
from .npy import NpyError, read_npy
from .origin import Origin

SHAPES: dict[str, tuple] = {
    "shape": (1, schema.FLAME_N_SHAPE),
    "expression": ("T", schema.FLAME_N_EXPRESSION),
    "rotation": ("T", 3),
    "rotation_matrices": ("T", 3, 3),
    "translation": ("T", 3),
    "jaw": ("T", 3),
    "neck": ("T", 3),
    "eyes": ("T", 6),
    "frames": ("T",),
    "scale": (1, 1),
}
MAX_ARRAY_BYTES = 2**30
DEFLATE_MAX_RATIO = 1032  # deflate encodes at most 258 bytes in 2 bits
_READ_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


class _Unreadable(ValueError):
    """A member the reader refuses; the message ends the sentence 'is not a readable npz (...)'."""


def read_tracking(path: Path) -> dict[str, np.ndarray]:
    """The tracking arrays of ``path``: FLAME parameters as float32, ``frames`` as int64, all checked."""
    origin = Origin.local(path, "tracking file")
    size = regular_file(path, origin)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            missing = [key for key in SHAPES if f"{key}.npy" not in members]
            if missing:
                raise origin.error(f"lacks the key {missing[0]!r}")
            arrays = {key: _read_member(archive, members[f"{key}.npy"], size) for key in SHAPES}
    except (_Unreadable, NpyError) as error:
        raise origin.error(f"is not a readable npz ({error})") from None
    except (zipfile.BadZipFile, zlib.error, struct.error, OSError, EOFError, ValueError) as error:
        raise origin.error(f"is not a readable npz ({error or type(error).__name__})") from None
    return _checked(origin, arrays)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, file_size: int) -> np.ndarray:
    """One ``.npy`` member, after checking what its zip entry and its header declare."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise _Unreadable(f"its member {name} is encrypted")
    if info.compress_type not in _READ_METHODS:
        raise _Unreadable(f"its member {name} uses compression method {info.compress_type}; "
                          "only stored and deflated members are read")
    if info.header_offset + info.compress_size > file_size:
        raise _Unreadable(f"its member {name} declares {info.compress_size} bytes beyond the end of the file")
    ratio = 1 if info.compress_type == zipfile.ZIP_STORED else DEFLATE_MAX_RATIO
    if info.file_size > min(info.compress_size * ratio + 64, MAX_ARRAY_BYTES):
        raise _Unreadable(f"its member {name} declares {info.file_size} bytes, more than its "
                          f"{info.compress_size} compressed bytes can hold")
    with archive.open(info) as stream:
        array = read_npy(stream, info.file_size, f"its member {name}")
        stream.read()  # to the end, so that zipfile checks the CRC
    return array


def _checked(origin: Origin, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Shapes, dtypes and ranges of the tracking arrays, cast to the dtypes the store holds."""
    if arrays["frames"].ndim != 1:
        raise origin.error(f"has frames of shape {arrays['frames'].shape}; expected one index per timestep")
    n_timesteps = len(arrays["frames"])
    result = {}
    for key, expected in SHAPES.items():
        array = arrays[key]
        expected = tuple(n_timesteps if extent == "T" else extent for extent in expected)
        if array.shape != expected:
            raise origin.error(f"has {key} of shape {array.shape}; expected {expected}")
        if (problem := non_real(array.dtype)) is not None:
            raise origin.error(f"has {key} of {problem}")
        result[key] = _frames(origin, array) if key == "frames" else _float32(origin, key, array)
    return result


def _float32(origin: Origin, key: str, array: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(array)):
        raise origin.error(f"has NaN or infinite values in {key}")
    with np.errstate(over="ignore"):
        cast = array.astype(np.float32)
    if not np.all(np.isfinite(cast)):
        raise origin.error(f"has values in {key} beyond float32's range (up to {np.max(np.abs(array)):.3g}), "
                           "the precision the store keeps")
    return cast


def _frames(origin: Origin, array: np.ndarray) -> np.ndarray:
    """Frame indices: whole numbers in 0..MAX_TIMESTEP, each once, as int64."""
    valid = np.isfinite(array) & (array >= 0) & (array <= MAX_TIMESTEP)
    valid &= np.floor(np.where(valid, array, 0)) == np.where(valid, array, 0)
    if not np.all(valid):
        raise origin.error(f"has frames that are not all whole numbers from 0 to {MAX_TIMESTEP} "
                           f"(found {shown(array[~valid][0].item())})")
    frames = array.astype(np.int64)
    values, counts = np.unique(frames, return_counts=True)
    if np.any(counts > 1):
        raise origin.error(f"lists frame {values[counts > 1][0]} twice in frames")
    return frames
