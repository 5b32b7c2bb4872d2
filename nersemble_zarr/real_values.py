"""One rule for every array a user hands in (meshes, landmarks, FLAME parameters, tracking files): real numbers.

Integers and floats pass. Complex values are refused, never cast: a cast to float keeps the real part and drops
the imaginary one without a word. Booleans, strings, Python objects and dates are refused too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import NersembleError, SubmissionError

REAL_KINDS = "iuf"  # signed and unsigned integers, floats


def non_real(dtype: Any) -> str | None:
    """Why values of ``dtype`` are not real numbers (the end of a sentence), or None when they are.
    A dtype numpy does not know (torch's) is judged by its name."""
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        name = str(dtype)
        kind = "c" if "complex" in name else "f" if "float" in name else "i" if "int" in name else "O"
    if kind in REAL_KINDS:
        return None
    never = ", never complex ones (their imaginary part would be lost)" if kind == "c" else ""
    return f"dtype {dtype}; expected real numbers (integers or floats){never}"


def check_real(value: Any, what: str, error: type[NersembleError] = SubmissionError) -> None:
    """Refuse ``value`` (an array, or anything numpy turns into one) unless it holds real numbers; ``what`` names
    it at the start of the sentence. An array's own dtype is read, so a dask array is not computed."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        try:
            dtype = np.asarray(value).dtype
        except (ValueError, TypeError) as cause:
            raise error(f"{what} is not an array of numbers ({cause}).") from None
    problem = non_real(dtype)
    if problem is not None:
        raise error(f"{what} has {problem}.")


def real_array(value: Any, what: str, error: type[NersembleError] = SubmissionError) -> np.ndarray:
    """``value`` as a numpy array of real numbers, or ``error`` with one sentence naming ``what``."""
    check_real(value, what, error)
    return np.asarray(value)
