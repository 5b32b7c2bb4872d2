"""release_free_memory gives a fragmented heap's free pages back (what keeps a convert's peak flat in videos)."""

import os
import subprocess
import sys
import textwrap

import pytest

# In a fresh process: one 16 MiB block freed (glibc raises its mmap threshold, as after a decoded frame), then
# 1 MiB blocks from the heap, each pinned by an 8 KiB block after it (too large for the small-block caches, so
# it comes from the top, next to it), touched and freed: free but resident until trimmed.
SCRIPT = textwrap.dedent("""
    import ctypes, os
    from nersemble_zarr.memory import release_free_memory

    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]

    def resident_mib():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    libc.free(libc.malloc(16 << 20))
    blocks = []
    for _ in range(64):
        block = libc.malloc(1 << 20)
        ctypes.memset(block, 1, 1 << 20)
        blocks.append((block, libc.malloc(8192)))
    for block, _ in blocks:
        libc.free(block)
    before = resident_mib()
    release_free_memory()
    print(before - resident_mib())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_free_memory_returns_freed_heap_pages():
    # without glibc's MALLOC_* tunables (dask.distributed sets MALLOC_TRIM_THRESHOLD_ in os.environ when a test
    # imports it), which fix the thresholds and so take the heap path away
    env = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    released = float(subprocess.run([sys.executable, "-c", SCRIPT], check=True, capture_output=True, text=True,
                                    env=env).stdout.strip())
    assert released > 48  # of the 64 MiB freed but resident
