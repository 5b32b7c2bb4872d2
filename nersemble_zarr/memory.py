"""Give the C heap's free pages back to the system between large pieces of work (glibc's ``malloc_trim``)."""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Callable


def release_free_memory() -> None:
    """Return the free memory of every malloc arena to the system (a no-op where the C library is not glibc).

    Decoding a video allocates one full-size frame (21 MB at 2200 x 3208 RGB) per frame in the decoding thread.
    glibc raises its mmap threshold after the first such block is freed, so later frames come from the thread's
    heap arena, where freed blocks stay resident: without a trim the peak grows with the number of videos a
    process converts, one arena's leftovers at a time.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        function = getattr(ctypes.CDLL(name), "malloc_trim")
    except (OSError, AttributeError, TypeError):
        return None
    function.argtypes, function.restype = [ctypes.c_size_t], ctypes.c_int
    return function
