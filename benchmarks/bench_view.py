"""``nersemble-zarr view``: logging a sequence to a Rerun recording vs reading the same frames with ``nz.frame``.

    python -m benchmarks.bench_view --frames 100 --level 4 [--quick]

A full-resolution synthetic NVS sequence (1100x1604; all 16 cameras, the 13 train cameras with frames, as in
the real benchmark) is generated, converted and downsampled once; then, each in its own process (peak memory =
that process's peak resident set size):

(a) ``log_sequence`` at ``--level`` into an ``.rrd`` file (every camera's pinhole, each frame JPEG-encoded,
    each alpha map as a segmentation, the point cloud), timed;
(b) the baseline: the same image frames read with ``nz.frame`` and alpha frames with the same direct reader.

The ``.rrd`` size is set against the bytes the store holds for those frames (images + alpha of the level).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks.options import parse_benchmark_args
from benchmarks.phases import phases_of, report_phase, run_phase
from benchmarks.table import Row, append_rows, peak_pair
from nersemble_zarr import catalogue, schema

PARTICIPANT, SEQUENCE = 388, "GLASSES"


def phase_generate(args) -> dict:
    from nersemble_zarr.convert import convert
    from nersemble_zarr.levels import downsample
    from nersemble_zarr.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(scale=1.0, n_frames=args.frames, nvs_participants=(PARTICIPANT,),
                             mono_participants=(), svfr_participants=(), n_points=5000)
    generate(args.root, config, workers=os.cpu_count() or 1)
    convert(args.root, args.store, benchmarks=("nvs",), workers=args.workers)
    downsample(args.store, [args.level], workers=args.workers)
    return {}


def _level_dataset(args):
    """The level's sequence Dataset, addressed so that ``nz.frame`` reads it straight from the store."""
    import nersemble_zarr.store as nz

    group = schema.level_group(args.level, "nvs", PARTICIPANT, SEQUENCE)
    dataset = nz.open(args.store)[group].to_dataset()
    dataset.encoding.update({nz.STORE_ENCODING: str(args.store), nz.GROUP_ENCODING: group})
    return dataset, group


def phase_view(args) -> dict:
    import nersemble_zarr.store as nz
    from nersemble_zarr.view import log_sequence, save_recording

    dataset = nz.sequence(nz.open(args.store), "nvs", PARTICIPANT)
    frames = []
    start = time.perf_counter()
    save_recording(args.rrd, "bench", lambda recording: log_sequence(
        dataset, recording, level=args.level, layout=False, progress=frames.append))
    return {"seconds": time.perf_counter() - start, "frames": sum(frames), "rrd_bytes": args.rrd.stat().st_size}


def phase_read(args) -> dict:
    import nersemble_zarr.store as nz
    from nersemble_zarr.chunk_reader import stored_frames
    from nersemble_zarr.storage import written_cameras

    dataset, group = _level_dataset(args)
    serials = [str(s) for s, done in zip(dataset[schema.SERIAL].values, written_cameras(dataset)) if done]
    alpha = stored_frames(str(args.store), group, schema.ALPHA)
    start, count = time.perf_counter(), 0
    for timestep in dataset[schema.TIMESTEP].values:
        for serial in serials:
            nz.frame(dataset, serial, int(timestep))
            alpha.read(serial, int(timestep))
            count += 1
    return {"seconds": time.perf_counter() - start, "frames": count}


PHASES = phases_of(globals())


def _stored_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _run(args, phase: str) -> dict:
    arguments = ["--work", str(args.work), "--frames", str(args.frames), "--level", str(args.level),
                 "--workers", str(args.workers)]
    return run_phase("benchmarks.bench_view", phase, arguments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--level", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--phase", choices=sorted(PHASES))
    parser.add_argument("--work", type=Path)
    args = parse_benchmark_args(parser, {"frames": 32})
    if args.phase:
        args.root, args.store, args.rrd = args.work / "fetched", args.work / "store.zarr", args.work / "view.rrd"
        report_phase(PHASES, args.phase, args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-view-") as tmp:
        args.work = Path(tmp)
        _run(args, "generate")
        view, read = _run(args, "view"), _run(args, "read")
        level = args.work / "store.zarr" / schema.level_group(args.level, "nvs", PARTICIPANT, SEQUENCE)
        level_bytes = sum(_stored_bytes(level / name) for name in (schema.IMAGES, schema.ALPHA))
        store_bytes = _stored_bytes(args.work / "store.zarr")
    cameras = len(catalogue.SERIALS)
    size = (f"{cameras} cameras ({view['frames'] // args.frames} with frames) x {args.frames} frames, level "
            f"{args.level} of {catalogue.NVS_WIDTH}x{catalogue.NVS_HEIGHT}")
    print(size)
    print(f"(a) log_sequence -> .rrd: {view['frames'] / view['seconds']:.1f} frames/s "
          f"(peak RSS {view['peak_rss_mib']:.0f} MiB); nz.frame reads: {read['frames'] / read['seconds']:.1f} "
          f"frames/s (peak RSS {read['peak_rss_mib']:.0f} MiB) -> ratio {read['seconds'] / view['seconds']:.3f}")
    print(f"(b) .rrd {view['rrd_bytes'] / 2**20:.1f} MiB vs the level's stored images + alpha "
          f"{level_bytes / 2**20:.1f} MiB (ratio {view['rrd_bytes'] / level_bytes:.2f}); whole store "
          f"{store_bytes / 2**20:.1f} MiB")
    append_rows(args.rows, [
        Row("view", f"(a) log a sequence to .rrd, {size}", f"{view['frames'] / view['seconds']:.1f} frames/s",
            f"{read['frames'] / read['seconds']:.1f} frames/s (nz.frame + alpha reads)",
            read["seconds"] / view["seconds"], "", peak_pair(view, read)),
        Row("view", f"(b) .rrd size vs the level's stored frames, {size}", f"{view['rrd_bytes'] / 2**20:.1f} MiB",
            f"{level_bytes / 2**20:.1f} MiB (store: images + alpha of level {args.level})",
            level_bytes / view["rrd_bytes"], "", ""),
    ])


if __name__ == "__main__":
    main()
