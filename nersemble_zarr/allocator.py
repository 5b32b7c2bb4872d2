"""Where glibc's malloc takes large blocks from, so that a long convert's peak memory does not creep.

glibc maps a block of at least its mmap threshold afresh and unmaps it when freed, and takes smaller ones from a
heap that keeps part of what is freed. The threshold starts at 128 KiB and rises to the size of each large block
freed (up to 32 MiB): after the first video, a decoder's pictures (1.8 MB chroma and 7.5 MB luma planes at
2200x3208, a 21 MB RGB picture) come from a worker thread's heap, and every later video leaves a little more of
it resident. A fixed threshold keeps them mapped for good: each video's pictures are returned whole when its
decoder closes, for the price of faulting them in again once per video. The threshold stays above every chunk
written, so that nothing is mapped and faulted in again once per frame.
"""

from __future__ import annotations

import ctypes
import os

LARGE_BLOCK_BYTES = 1_572_864  # 1.5 MiB: above a level-4 frame (550 x 802 x 3), below a full-size decoder picture
MMAP_THRESHOLD_MAX = 32 << 20  # the most glibc accepts on 64-bit systems (HEAP_MAX_SIZE / 2)
DEFAULT_TRIM_THRESHOLD = 128 << 10  # glibc's own, set again: what the process did so far may have raised it
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers in glibc's malloc.h
ALLOCATOR_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def large_block_threshold(largest_chunk_bytes: int = 0) -> int | None:
    """The threshold that maps per-video buffers but never a per-chunk one: at least 1.5 MiB and above the
    largest chunk written plus its compressed bound (lz4's and zstd's are under n / 64 + 64 KiB); None where that
    is beyond what glibc accepts."""
    threshold = max(LARGE_BLOCK_BYTES, largest_chunk_bytes + largest_chunk_bytes // 64 + (64 << 10))
    return threshold if threshold <= MMAP_THRESHOLD_MAX else None


def map_large_blocks(largest_chunk_bytes: int = 0) -> bool:
    """Make glibc map every block above ``large_block_threshold(largest_chunk_bytes)`` afresh, for the rest of
    the process. Where the chunks are large blocks themselves (the threshold is above 1.5 MiB), also keep up to
    four thresholds free at the top of a heap before returning memory to the system: a frame's round trip frees its
    contiguous copy and its compressed bytes together, and these are kept for the next frame instead of being
    returned and faulted in again (glibc's rising threshold keeps twice the largest block freed). Below that,
    the heap keeps glibc's initial 128 KiB, which keeps the peak lowest (whatever the process freed before).

    Returns whether it did: not where the C library is not glibc, nor where the environment already sets glibc's
    malloc (a ``MALLOC_*_`` variable or a ``glibc.malloc`` tunable: the user's choice is kept), nor where chunks
    are too large for a threshold above them.
    """
    threshold = large_block_threshold(largest_chunk_bytes)
    if threshold is None or not _is_glibc() or _environment_sets_malloc():
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    trim = DEFAULT_TRIM_THRESHOLD if threshold == LARGE_BLOCK_BYTES else 4 * threshold
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1 and mallopt(M_TRIM_THRESHOLD, trim) == 1


def _is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or a C library that does not know the name
        return False


def _environment_sets_malloc() -> bool:
    return (any(name in os.environ for name in ALLOCATOR_ENVIRONMENT)
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""))
