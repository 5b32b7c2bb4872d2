"""``.npy`` arrays read with explicit limits instead of ``np.load``.

The header is parsed first and the array it declares must have exactly the bytes that follow it: no header
can make the reader allocate more than the file holds (``np.load`` allocates the declared shape, 10^12 x 3
floats included, before it reads a byte). Object arrays are refused from their header and never unpickled.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np


class NpyError(ValueError):
    """A ``.npy`` stream that is refused; the message says why, starting with the name the caller gave."""


def read_npy(stream: BinaryIO, size: int, name: str) -> np.ndarray:
    """The array of a ``.npy`` stream of ``size`` bytes in all (header included), read from its start.

    ``name`` starts each reason ("its member expression.npy", "it"); a refusal raises NpyError."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise NpyError(f"{name} has .npy format version {version}; expected 1.0 or 2.0")
    except NpyError:
        raise
    except (ValueError, SyntaxError, TypeError, EOFError) as error:
        raise NpyError(f"{name} has no readable .npy header ({error})") from None
    if dtype.hasobject:
        raise NpyError(f"{name} holds Python objects, which are never unpickled")
    if any(extent < 0 for extent in shape):
        raise NpyError(f"{name} declares the negative shape {shape}")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    held = size - stream.tell()
    if declared != held:
        raise NpyError(f"{name} declares {shape} values of {dtype} ({declared} bytes) but holds {held} bytes")
    data = stream.read(declared)
    if len(data) != declared:
        raise NpyError(f"{name} ends after {len(data)} of {declared} bytes")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
