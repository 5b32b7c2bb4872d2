"""Colour correction of one full-size v2 frame (2200 x 3208): ``nersemble_zarr.colour`` against the official kit.

    python -m benchmarks.bench_colour [--terms 3 4 ...] [--repeats 3] [--device cpu|cuda|auto] [--threads N]
                                      [--quick] [--rows FILE]

One camera-like frame (``synthetic.colour.camera_like_frame``, every level of every channel) and, per ``terms``
(default: every value the official code accepts; ``--quick``: 3 and 10), a near-identity 3 x terms matrix, both
handed over as .npy files. Two fresh processes per ``terms`` (so each
peak resident memory is its own):

- ``official``: ``nersemble_data.util.color_correction.correct_color`` (``nersemble-data`` 0.0.6, colour-science,
  float64 numpy);
- ``ours``: ``nersemble_zarr.colour.correct_colour``: the CPU kernel on ``--threads`` threads (default: every
  CPU), or torch on ``--device cuda``.

Each process corrects the frame once to warm up (for the CPU kernel: loading it from numba's on-disk cache, or
compiling it; the first call's time is printed), then ``--repeats`` times; the fastest run counts (the machine
may be shared). Printed per terms: milliseconds per frame of each, their ratio, the CPU time per frame of each
(all threads, less disturbed by other processes than the wall clock) and its ratio, peak RSS of each process
(VmHWM, imports and the frame included) and how much the correction raised it, the largest difference between
the two results and the share of values that differ, and the load average before and after. Needs
``nersemble-data`` (the test extra).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.options import parse_benchmark_args
from benchmarks.phases import peak_rss_mib
from benchmarks.table import Row, append_rows, peak_pair
from nersemble_zarr.colour import SUPPORTED_TERMS

HEIGHT, WIDTH = 3208, 2200


def child(args: argparse.Namespace) -> None:
    """One measured phase in this (fresh) process: time it, save its result, print one JSON line."""
    frame, matrix = np.load(args.frame), np.load(args.matrix)
    extra = {}
    if args.phase == "official":
        from nersemble_data.util.color_correction import correct_color

        run = lambda: correct_color(frame, matrix)
    else:
        from nersemble_zarr import colour_kernel
        from nersemble_zarr.colour import correct_colour

        device = "cpu"
        if args.device != "cpu":
            import torch

            device = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
                "cpu" if args.device == "auto" else args.device
        threads = args.threads or colour_kernel.default_threads()
        run = lambda: correct_colour(frame, matrix, device, threads=threads)
        extra = {"threads": threads, "device": device}
    imported_mib = peak_rss_mib()
    start = time.perf_counter()
    result = run()  # warm-up
    extra["first_seconds"] = time.perf_counter() - start
    best, cpu_start = float("inf"), time.process_time()
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    cpu_seconds = (time.process_time() - cpu_start) / args.repeats
    np.save(args.output, result)
    peak = peak_rss_mib()
    print(json.dumps({"seconds": best, "cpu_seconds": cpu_seconds, "peak_rss_mib": peak,
                      "working_mib": peak - imported_mib, **extra}))


def measure(phase: str, args: argparse.Namespace, frame: Path, matrix: Path, output: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_colour", "--phase", phase, "--matrix", str(matrix),
               "--frame", str(frame), "--output", str(output), "--repeats", str(args.repeats),
               "--device", args.device] + (["--threads", str(args.threads)] if args.threads else [])
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terms", type=int, nargs="+", default=list(SUPPORTED_TERMS),
                        help="Cheung 2004 terms of the matrices (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per phase; the fastest counts")
    parser.add_argument("--device", default="cpu", help="where ours runs: cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of ours (default: every CPU)")
    parser.add_argument("--phase", choices=["official", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--matrix", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--frame", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parse_benchmark_args(parser, {"terms": [3, 10], "repeats": 2})
    if args.phase:
        child(args)
        return
    from nersemble_zarr.synthetic.colour import camera_like_frame, near_identity_matrix

    unsupported = [terms for terms in args.terms if terms not in SUPPORTED_TERMS]
    if unsupported:
        parser.error(f"--terms {unsupported[0]} is not a Cheung 2004 terms value; choose from {SUPPORTED_TERMS}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        frame = Path(folder) / "frame.npy"
        np.save(frame, camera_like_frame(HEIGHT, WIDTH))
        print(f"Colour correction of one {WIDTH}x{HEIGHT} camera-like frame, fastest of {args.repeats} runs; "
              f"{os.cpu_count()} CPUs")
        for terms in args.terms:
            matrix = Path(folder) / f"matrix_{terms}.npy"
            np.save(matrix, near_identity_matrix(terms, seed=terms))
            load = os.getloadavg()[0]
            official = measure("official", args, frame, matrix, Path(folder) / "official.npy")
            ours = measure("ours", args, frame, matrix, Path(folder) / "ours.npy")
            ours_frame = np.load(Path(folder) / "ours.npy").astype(np.int16)
            difference = np.abs(ours_frame - np.load(Path(folder) / "official.npy"))
            ratio = official["seconds"] / ours["seconds"]
            memory = lambda result: (f"peak RSS {result['peak_rss_mib']:.0f} MiB, "
                                     f"+{result['working_mib']:.0f} MiB by the correction")
            print(f"  terms {terms:2d}: official {official['seconds']:.2f} s ({memory(official)}), "
                  f"ours {ours['seconds'] * 1000:.0f} ms on {ours['device']} with {ours['threads']} threads "
                  f"(first call {ours['first_seconds']:.2f} s; {memory(ours)}): {ratio:.1f}x (CPU time per frame "
                  f"{official['cpu_seconds']:.2f} s against "
                  f"{ours['cpu_seconds']:.2f} s: {official['cpu_seconds'] / ours['cpu_seconds']:.1f}x); "
                  f"largest difference {difference.max()} level, "
                  f"{np.count_nonzero(difference) / difference.size:.1e} of the values differ; load average "
                  f"{load:.1f} before, {os.getloadavg()[0]:.1f} after")
            rows.append(Row(
                benchmark="colour",
                what=f"colour correction of one {WIDTH}x{HEIGHT} frame, terms {terms}, {ours['device']}, "
                     f"{ours['threads']} threads (load {load:.1f})",
                ours=f"{ours['seconds'] * 1000:.0f} ms",
                baseline=f"{official['seconds']:.2f} s (official correct_color)",
                ratio=ratio, limit=f"target 20x; max difference {difference.max()} level",
                peak_mib=f"{peak_pair(ours, official)} (+{ours['working_mib']:.0f} / +{official['working_mib']:.0f} "
                         "by the correction)",
            ))
    append_rows(args.rows, rows)


if __name__ == "__main__":
    main()
