"""Submission export: throughput vs a bare PyAV crf-14 encode, and peak memory vs sequence length.

    python -m benchmarks.bench_export [--frames 75,150,300] [--repeats 1] [--folder DIR] [--quick] [--rows FILE]

One full-resolution (1100x1604) NVS camera of procedurally textured moving frames is written to a zarr
predictions store (1 frame per chunk). For each length N, two fresh processes read its first N frames:

- ``list``: the official toolkit's way: all frames read into a Python list, then written with PyAV
  (libx264 crf 14, yuv420p, 73 fps); the encode alone is timed: the bare-encode baseline;
- ``export``: ``export_submission`` on the lazily opened store (one worker), timed end to end (read,
  encode, zip, validate).

Printed per N: wall-clock frames/s of each and their ratio (the best of ``--repeats`` runs, as other load
only slows a run down); CPU milliseconds per frame (user + system, all threads; the least over the
repeats) and their ratio bare/export, the per-worker efficiency, which other load on a shared machine
disturbs far less; and each process's peak resident memory (VmHWM, the largest over the repeats). Every process first reads one
frame untimed, as the list's reading does for the bare encode: the one-off imports and zarr's set-up of a
process are not per-frame costs.

The export must also read the frames from the store and decode every frame of its zip while validating it,
which the bare encode does not: a third process measures those two stages alone (CPU ms per frame, the
least over the repeats). They do not simply add up: the bare encode reads its frames from a list of N
arrays (the official toolkit's way), the export from a few reused blocks, which costs the encoder less.
``--rows FILE`` appends one row (the longest N) to the benchmark table; ``--quick`` means ``--frames 75``
unless ``--frames`` is given.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.options import parse_benchmark_args
from benchmarks.phases import peak_rss_mib
from benchmarks.table import Row, append_rows, peak_pair

WIDTH, HEIGHT = 1100, 1604
KEY = (388, "GLASSES", "222200046")


def frame(t: int, texture: np.ndarray) -> np.ndarray:
    """Frame ``t``: a textured ellipse (the 'head') drifting over a slowly shifting textured background."""
    background = np.roll(texture, (t * 3, t * 2), axis=(0, 1)) // 3
    y, x = np.ogrid[0:HEIGHT, 0:WIDTH]
    cy, cx = HEIGHT / 2 + 60 * np.sin(t / 40), WIDTH / 2 + 50 * np.cos(t / 55)
    inside = ((y - cy) / 520) ** 2 + ((x - cx) / 380) ** 2 < 1
    head = np.roll(texture, (-t * 4, t), axis=(0, 1))
    return np.where(inside[..., None], head, background)


def smooth_texture(seed: int = 0) -> np.ndarray:
    """Band-limited colour texture (sums of random sinusoids), uint8 (H, W, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    out = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    for channel in range(3):
        for _ in range(6):
            fy, fx = rng.uniform(0.005, 0.08, 2)
            out[..., channel] += np.sin(fy * y + fx * x + rng.uniform(0, 6.3))
    out = (out - out.min()) / (out.max() - out.min())
    return (out * 255).astype(np.uint8)


def write_store(path: Path, n_frames: int) -> None:
    """The predictions store: nvs/388/GLASSES images (serial, timestep, y, x, channel), 1 frame per chunk."""
    import dask.array as da
    import xarray as xr

    from nersemble_zarr import schema

    texture = smooth_texture()
    frames = da.map_blocks(
        lambda block, block_info=None: frame(block_info[None]["chunk-location"][1], texture)[None, None],
        da.zeros((1, n_frames, HEIGHT, WIDTH, 3), dtype=np.uint8, chunks=(1, 1, HEIGHT, WIDTH, 3)),
        dtype=np.uint8,
    )
    dataset = xr.Dataset(
        {schema.IMAGES: ((schema.SERIAL, schema.TIMESTEP, schema.Y, schema.X, schema.CHANNEL), frames)},
        coords={schema.SERIAL: np.array([KEY[2]], dtype=object), schema.TIMESTEP: np.arange(n_frames)},
    )
    tree = xr.DataTree.from_dict({schema.sequence_group("nvs", KEY[0], KEY[1]): dataset})
    tree.to_zarr(path, consolidated=False, compute=True)


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads: robust to other load on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(mode: str, store: Path, n_frames: int, folder: Path) -> dict:
    """One measurement in this (fresh) process; returns frames/s, CPU ms per frame and peak memory."""
    import xarray as xr

    from nersemble_zarr import schema

    tree = xr.open_datatree(store, engine="zarr", chunks=None, consolidated=False)
    group = schema.sequence_group("nvs", KEY[0], KEY[1])
    images = tree[group].dataset.isel({schema.TIMESTEP: slice(0, n_frames)})
    images[schema.IMAGES][0, 0].values  # untimed in every mode: imports (xarray's of dask.array), zarr's set-up
    if mode == "list":
        from nersemble_zarr.video import VideoWriter

        frames = [images[schema.IMAGES][0, t].values for t in range(n_frames)]
        start, cpu = time.perf_counter(), cpu_seconds()
        with VideoWriter(folder / "bare.mp4", width=WIDTH, height=HEIGHT, fps=73.0) as writer:
            for image in frames:
                writer.write(image)
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    elif mode == "stages":
        return stages(images[schema.IMAGES][0], folder / "bare.mp4", n_frames)
    else:
        from nersemble_zarr.submission import export_submission

        predictions = xr.DataTree.from_dict({group: images})
        start, cpu = time.perf_counter(), cpu_seconds()
        export_submission(
            predictions, folder / "submission.zip", "nvs", frame_counts={KEY[:2]: n_frames}, partial=True,
            overwrite=True, workers=1,
        )
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return {"fps": n_frames / seconds, "cpu_ms": 1000 * cpu / n_frames, "peak_rss_mib": peak_rss_mib()}


def stages(frames, video: Path, n_frames: int) -> dict:
    """CPU ms per frame of the two stages the export adds to the encode, each alone: reading the frames
    through the export's own source (read-ahead included), and the validation's decode of every frame."""
    from nersemble_zarr.submission.encode import read_ahead
    from nersemble_zarr.submission.sources import ArrayVideo
    from nersemble_zarr.video import count_decodable_frames

    cpu = cpu_seconds()
    assert sum(len(block) for block in read_ahead(ArrayVideo("bench", frames).blocks())) == n_frames
    read, cpu = cpu_seconds() - cpu, cpu_seconds()
    assert count_decodable_frames(video).decoded == n_frames
    decode = cpu_seconds() - cpu
    return {"read_ms": 1000 * read / n_frames, "decode_ms": 1000 * decode / n_frames}


def measure(mode: str, store: Path, n_frames: int, folder: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_export", "--child", mode, "--store", str(store),
               "--frames", str(n_frames), "--folder", str(folder)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="75,150,300", help="comma-separated sequence lengths")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement; the fastest is kept")
    parser.add_argument("--folder", type=Path, default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--child", choices=["list", "stages", "export"], help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = parse_benchmark_args(parser, {"frames": "75"})
    if args.child:
        print(json.dumps(child(args.child, args.store, int(args.frames), args.folder)))
        return

    lengths = sorted(int(n) for n in args.frames.split(","))
    with tempfile.TemporaryDirectory(dir=args.folder) as scratch:
        folder = Path(scratch)
        store = folder / "pred.zarr"
        start = time.perf_counter()
        write_store(store, lengths[-1])
        print(f"store: {lengths[-1]} frames of {WIDTH}x{HEIGHT} written in {time.perf_counter() - start:.0f} s")
        print(
            f"{'frames':>6} {'bare fps':>9} {'export fps':>11} {'ratio':>6} {'bare cpu ms':>12} {'export cpu ms':>14} "
            f"{'cpu ratio':>10} {'read ms':>8} {'decode ms':>10} {'list peak MiB':>14} {'export peak MiB':>16}"
        )
        for n_frames in lengths:
            runs = [{mode: measure(mode, store, n_frames, folder) for mode in ("list", "stages", "export")}
                    for _ in range(args.repeats)]
            bare, export = ({"fps": max(r[mode]["fps"] for r in runs), "cpu_ms": min(r[mode]["cpu_ms"] for r in runs),
                             "peak_rss_mib": max(r[mode]["peak_rss_mib"] for r in runs)} for mode in ("list", "export"))
            read, decode = (min(r["stages"][key] for r in runs) for key in ("read_ms", "decode_ms"))
            print(
                f"{n_frames:>6} {bare['fps']:>9.2f} {export['fps']:>11.2f} {export['fps'] / bare['fps']:>6.2f} "
                f"{bare['cpu_ms']:>12.1f} {export['cpu_ms']:>14.1f} {bare['cpu_ms'] / export['cpu_ms']:>10.2f} "
                f"{read:>8.1f} {decode:>10.1f} {bare['peak_rss_mib']:>14.0f} {export['peak_rss_mib']:>16.0f}"
            )
    append_rows(args.rows, [Row(
        "export", f"export-submission per-worker efficiency: CPU per frame, one {WIDTH}x{HEIGHT} video of "
        f"{n_frames} frames, 1 worker (read, encode, zip, validate)",
        f"{export['cpu_ms']:.1f} CPU ms/frame ({export['fps']:.2f} frames/s)",
        f"{bare['cpu_ms']:.1f} CPU ms/frame ({bare['fps']:.2f} frames/s; bare PyAV crf-14 encode of frames in memory)",
        bare["cpu_ms"] / export["cpu_ms"],
        f"target >= 0.9 (the export also reads, {read:.1f} ms, and decodes to validate, {decode:.1f} ms)",
        peak_pair(export, bare),
    )])


if __name__ == "__main__":
    main()
