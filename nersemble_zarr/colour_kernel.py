"""The CPU colour correction: one fused numba kernel per output kind, run on row blocks by a thread pool.

Each row of pixels is read once and written once: decoded by table into the three linear channels, expanded
into its monomials, multiplied by the matrix and encoded, all on row-sized float32 buffers that stay in cache.
The kernels are compiled without numba's own threading (``parallel=True``): its only thread-safe layer here,
GNU OpenMP, aborts any forked child of a process that used it (a torch DataLoader's workers), and its fallback
layer aborts when two threads launch at once (dask tasks). Instead they release the GIL (``nogil``) and a
thread pool runs blocks of rows in parallel, pulled by whichever thread is free. Compiled code is cached on disk
where numba finds a writable folder, else compiled once per process (:mod:`nersemble_zarr.jit`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from .jit import compile_kernel

BLOCKS_PER_THREAD = 4  # more blocks than threads: a thread slowed by other work takes fewer of them
MIN_BLOCK_PIXELS = 1 << 15  # below this a block costs less than handing it to another thread


@compile_kernel
def linear_row(pixels, decode, factors, matrix, offset, monomials, linear):
    """Linear light (3, W) float32 into ``linear`` of one row of uint8 ``pixels`` (W, 3): ``offset`` plus
    ``matrix`` (3, M) times the row's M monomials, built in ``monomials`` (M, W): rows 0..2 are R, G, B decoded
    by the ``decode`` table, row k >= 3 is row ``factors[k, 0]`` times channel ``factors[k, 1]``."""
    width = pixels.shape[0]
    for x in range(width):
        monomials[0, x] = decode[pixels[x, 0]]
        monomials[1, x] = decode[pixels[x, 1]]
        monomials[2, x] = decode[pixels[x, 2]]
    for k in range(3, monomials.shape[0]):
        lower, channel = factors[k, 0], factors[k, 1]
        for x in range(width):
            monomials[k, x] = monomials[lower, x] * monomials[channel, x]
    for c in range(3):
        for x in range(width):
            linear[c, x] = offset[c]
    for k in range(monomials.shape[0]):
        w0, w1, w2 = matrix[0, k], matrix[1, k], matrix[2, k]
        if w0 == 0 and w1 == 0 and w2 == 0:  # a monomial only needed to build another one
            continue
        for x in range(width):
            value = monomials[k, x]
            linear[0, x] += w0 * value
            linear[1, x] += w1 * value
            linear[2, x] += w2 * value


@compile_kernel
def encode_levels(bits, encode, shift, out):
    """The official uint8 levels (W, 3) into ``out`` of linear light given as float32 bit patterns ``bits``
    (3, W) int32, by the ``encode`` table over bit patterns >> ``shift`` (``colour.srgb_encoding_table``):
    negative values (and -0.0) clamp to level 0, values from 2.0 (and positive NaN) to 255."""
    largest = (encode.shape[0] << shift) - 1  # the bit pattern of the largest float32 the table covers
    for x in range(bits.shape[1]):
        for c in range(3):
            pattern = min(max(bits[c, x], 1), largest)  # float32 order is int32 order for positive values
            index = np.uint32(pattern) >> np.uint32(shift)  # unsigned: no check for a negative index (15 % faster)
            out[x, c] = (encode[index] + pattern) >> 16


@compile_kernel
def encode_values(linear, out):
    """sRGB values (W, 3) float64 into ``out`` of linear light (3, W), as ``colour.cctf_encoding`` (IEC
    61966-2-1), unclipped: the linear segment below 0.0031308, negative values included."""
    for x in range(linear.shape[1]):
        for c in range(3):
            value = np.float64(linear[c, x])
            out[x, c] = value * 12.92 if value <= 0.0031308 else 1.055 * value ** (1 / 2.4) - 0.055


@compile_kernel
def correct_levels(pixels, start, stop, decode, encode, shift, factors, matrix, offset, out):
    """Rows ``start:stop`` of uint8 ``pixels`` (rows, W, 3) corrected into uint8 levels in ``out``."""
    monomials = np.empty((factors.shape[0], pixels.shape[1]), np.float32)
    linear = np.empty((3, pixels.shape[1]), np.float32)
    bits = linear.view(np.int32)
    for y in range(start, stop):
        linear_row(pixels[y], decode, factors, matrix, offset, monomials, linear)
        encode_levels(bits, encode, shift, out[y])


@compile_kernel
def correct_values(pixels, start, stop, decode, factors, matrix, offset, out):
    """Rows ``start:stop`` of uint8 ``pixels`` (rows, W, 3) corrected into float64 sRGB values in ``out``."""
    monomials = np.empty((factors.shape[0], pixels.shape[1]), np.float32)
    linear = np.empty((3, pixels.shape[1]), np.float32)
    for y in range(start, stop):
        linear_row(pixels[y], decode, factors, matrix, offset, monomials, linear)
        encode_values(linear, out[y])


def default_threads() -> int:
    """Threads of a correction called without a count: one on any thread but the main one (a dask task, a
    server's handler: the caller's threads are the parallelism), else every CPU this process may run on."""
    if threading.current_thread() is not threading.main_thread():
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_rows(kernel: Callable, pixels: np.ndarray, arguments: tuple, out: np.ndarray, threads: int) -> None:
    """``kernel(pixels, start, stop, *arguments, out)`` over every row of C-contiguous ``pixels``
    (rows, W, 3), in blocks of rows on up to ``threads`` threads (on this one when one is enough)."""
    rows = pixels.shape[0]
    blocks = min(rows, threads * BLOCKS_PER_THREAD, max(1, rows * pixels.shape[1] // MIN_BLOCK_PIXELS))
    if threads == 1 or blocks <= 1:
        kernel(pixels, 0, rows, *arguments, out)
        return
    edges = np.linspace(0, rows, blocks + 1).astype(np.int64)
    with ThreadPoolExecutor(min(threads, blocks)) as pool:
        for _ in pool.map(lambda block: kernel(pixels, edges[block], edges[block + 1], *arguments, out),
                          range(blocks)):
            pass
