"""The local convert's allocator setting, seen in glibc's own chunks: each check runs in a fresh interpreter, since the
setting lasts for the rest of a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import zarr

from nersemble_zarr.allocator import ALLOCATOR_ENVIRONMENT, LARGE_BLOCK_BYTES, MMAP_THRESHOLD_MAX, large_block_threshold
from nersemble_zarr.frame_codecs import frame_codec
from nersemble_zarr.frame_layout import FrameLayout

pytestmark = pytest.mark.skipif(not (getattr(os, "confstr", None) and (os.confstr("CS_GNU_LIBC_VERSION") or "")
                                     .startswith("glibc")), reason="glibc's malloc only")

# Frees an 8 MiB block (glibc's dynamic threshold rises to it), then asks which of a 4, a 2 and a 1 MiB block glibc
# mapped (bit 1 of a chunk's size field, the word before the pointer malloc returns, is glibc's IS_MMAPPED), and
# whether the main heap keeps a freed 1.25 MiB at its top or returns it to the system (mallinfo2's keepcost).
PROBE = """
import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)

def mapped(size):
    block = libc.malloc(size)
    answer = bool(ctypes.c_size_t.from_address(block - ctypes.sizeof(ctypes.c_size_t)).value & 2)
    libc.free(block)
    return answer

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc.mallinfo2.restype = Mallinfo2

def top_kept(size):
    libc.free(libc.malloc(size))
    return libc.mallinfo2().keepcost >= size

libc.free(libc.malloc(8 << 20))
print(json.dumps({"set": set_it, **{f"{size} MiB": mapped(size << 20) for size in (4, 2, 1)},
                  "kept": top_kept(1280 << 10)}))
"""


def _probe(setup: str, env: dict[str, str] | None = None) -> dict:
    clean = {name: value for name, value in os.environ.items()
             if name not in ALLOCATOR_ENVIRONMENT and name != "GLIBC_TUNABLES"}
    script = "import json\n" + textwrap.dedent(setup) + PROBE
    result = subprocess.run([sys.executable, "-c", script], env={**clean, **(env or {})}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_glibcs_default_threshold_rises_so_a_2_mib_block_comes_from_the_heap():
    assert _probe("set_it = None") == {"set": None, "4 MiB": False, "2 MiB": False, "1 MiB": False,
                                      "kept": True}


def test_large_blocks_are_mapped_once_set_and_small_ones_are_not():
    assert 1 << 20 < LARGE_BLOCK_BYTES < 2 << 20
    probed = _probe("from nersemble_zarr.allocator import map_large_blocks\nset_it = map_large_blocks()")
    assert probed == {"set": True, "4 MiB": True, "2 MiB": True, "1 MiB": False, "kept": False}


def test_above_large_chunks_the_heap_keeps_what_a_frame_frees():
    probed = _probe("from nersemble_zarr.allocator import map_large_blocks\nset_it = map_large_blocks(3 << 20)")
    assert probed == {"set": True, "4 MiB": True, "2 MiB": False, "1 MiB": False, "kept": True}


def test_a_malloc_setting_of_the_environment_is_kept():
    probed = _probe("from nersemble_zarr.allocator import map_large_blocks\nset_it = map_large_blocks()",
                    env={"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=6291456"})
    # the tunable fixes the threshold alone: glibc's trim threshold stays at 128 KiB, where the heap keeps nothing
    assert probed == {"set": False, "4 MiB": False, "2 MiB": False, "1 MiB": False, "kept": False}


def test_the_cli_convert_maps_large_blocks(synthetic_dataset, tmp_path):
    """`nersemble-zarr convert` (decoding in its own process) leaves the setting on; a dynamic threshold would
    have risen with the decoder's freed pictures."""
    setup = f"""
    from click.testing import CliRunner
    from nersemble_zarr.cli.main import main as cli
    result = CliRunner().invoke(cli, ["convert", {str(synthetic_dataset.parent)!r}, {str(tmp_path / "s.zarr")!r},
                                      "-b", "dataset", "-p", "17", "-s", "EXP-1-head", "--cameras", "222200037"])
    assert result.exit_code == 0, result.output
    set_it = "convert"
    """
    assert _probe(setup) == {"set": "convert", "4 MiB": True, "2 MiB": True, "1 MiB": False, "kept": False}


@pytest.mark.parametrize("height, width", [(802, 550), (1604, 1100), (3208, 2200)])
@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_no_chunk_nor_its_compressed_bytes_reach_the_threshold(height, width, codec, tmp_path):
    """Random bytes are what compresses worst: a frame array's own compressor (as the shard writer runs it) keeps
    a chunk of them below the threshold."""
    shape = (1, 1, height, width, 3)
    array = zarr.create_array(tmp_path / "frames.zarr", shape=shape, chunks=shape, shards=shape, dtype="uint8",
                              dimension_names=("serial", "timestep", "y", "x", "channel"),
                              **frame_codec(codec).zarr_encoding())
    chunk = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    compressed = FrameLayout.of(array).codec.encode(chunk)
    threshold = large_block_threshold(chunk.nbytes)
    assert threshold >= LARGE_BLOCK_BYTES and chunk.nbytes < threshold and len(compressed) < threshold
    assert large_block_threshold(550 * 802 * 3) == LARGE_BLOCK_BYTES  # a level-4 frame keeps 1.5 MiB


def test_chunks_beyond_glibcs_largest_threshold_leave_it_alone():
    assert large_block_threshold(MMAP_THRESHOLD_MAX) is None
