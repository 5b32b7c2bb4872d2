"""Where glibc's malloc takes large blocks from, so that a long convert's peak memory does not creep.

glibc maps a block of at least its mmap threshold afresh and unmaps it when freed, and takes smaller ones from a
heap that keeps part of what is freed. The threshold starts at 128 KiB and rises to the size of each large block
freed (up to 32 MiB): after the first video, a decoder's pictures (1.8 MB chroma and 7.5 MB luma planes at
2200x3208, a 21 MB RGB picture) come from a worker thread's heap, and every later video leaves a little more of
it resident. A fixed threshold keeps them mapped for good: each video's pictures are returned whole when its
decoder closes, for the price of faulting them in again once per video.
"""

from __future__ import annotations

import ctypes
import os

LARGE_BLOCK_BYTES = 1_572_864  # 1.5 MiB: above a level-4 frame (550 x 802 x 3) and its compressed chunk
M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
ALLOCATOR_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def map_large_blocks(threshold: int = LARGE_BLOCK_BYTES) -> bool:
    """Make glibc map every block of ``threshold`` bytes or more afresh, for the rest of the process.

    Returns whether it did: not where the C library is not glibc, nor where the environment already sets glibc's
    malloc (a ``MALLOC_*_`` variable or a ``glibc.malloc`` tunable: the user's choice is kept).
    """
    if not _is_glibc() or _environment_sets_malloc():
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1


def _is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or a C library that does not know the name
        return False


def _environment_sets_malloc() -> bool:
    return (any(name in os.environ for name in ALLOCATOR_ENVIRONMENT)
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""))
