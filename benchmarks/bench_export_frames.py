"""export-frames throughput vs writing the same PNGs straight from a PyAV decode loop of the source mp4s.

    python -m benchmarks.bench_export_frames --cameras 2 --frames 64 --workers 2 [--format vhap|nerfstudio]

Full-resolution synthetic NVS videos (1100x1604) are generated and converted once; then, each phase in its
own process (peak memory = that process's peak resident set size), with the same number of workers:

(a) level 1: ``export_frames`` from the store vs a per-camera loop that decodes images + alpha mp4s with
    PyAV and writes the same image and mask PNGs (same compositing and PNG encoder);
(b) level 2: ``export_frames --level 2`` (after ``downsample``) vs the same decode loop plus the same
    area downsampling per frame; the ``downsample --levels 2,4`` run itself is timed too.
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
from nersemble_zarr import catalogue

PARTICIPANT, SEQUENCE = 388, "GLASSES"




def _serials(args) -> tuple[str, ...]:
    return catalogue.NVS_TRAIN_SERIALS[: args.cameras]


def phase_generate(args) -> dict:
    from nersemble_zarr.convert import convert
    from nersemble_zarr.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(
        scale=1.0, n_frames=args.frames, nvs_participants=(PARTICIPANT,), nvs_serials=_serials(args),
        mono_participants=(), svfr_participants=(), n_points=1000,
    )
    generate(args.root, config, workers=os.cpu_count() or 1)
    start = time.perf_counter()
    convert(args.root, args.store, benchmarks=("nvs",), workers=args.workers)
    return {"convert_seconds": time.perf_counter() - start}


def phase_decode_to_png(args) -> dict:
    """The baseline: one task per camera decoding its two videos in lockstep and writing PNGs."""
    import numpy as np

    from nersemble_zarr.export_frames.pixels import composite, write_png
    from nersemble_zarr.levels import downsample_frames
    from nersemble_zarr.parallel import run_tasks
    from nersemble_zarr.video import iter_frames

    out = args.work / f"decode-level-{args.level}"
    (out / "images").mkdir(parents=True)
    (out / "fg_masks").mkdir()
    threads = max(1, (os.cpu_count() or 1) // args.workers)

    def camera(serial: str) -> int:
        images = iter_frames(args.root / "nvs" / catalogue.video_path(PARTICIPANT, SEQUENCE, serial), threads=threads)
        alphas = iter_frames(args.root / "nvs" / catalogue.video_path(PARTICIPANT, SEQUENCE, serial, "alpha_maps"),
                             gray=True, threads=threads)
        count = 0
        for index, (image, alpha) in enumerate(zip(images, alphas)):
            if args.level > 1:
                image, alpha = (frame[0] for frame in downsample_frames(image[None], alpha[None], args.level))
            name = f"{index:05d}_{serial}.png"
            write_png(out / "images" / name, composite(image, alpha, "black"))
            write_png(out / "fg_masks" / name, np.ascontiguousarray(alpha))
            count += 1
        return count

    start = time.perf_counter()
    frames = sum(run_tasks(camera, list(_serials(args)), workers=args.workers))
    return {"seconds": time.perf_counter() - start, "frames": frames}


def phase_downsample(args) -> dict:
    from nersemble_zarr.levels import downsample

    start = time.perf_counter()
    summary = downsample(args.store, [2, 4], workers=args.workers)
    return {"seconds": time.perf_counter() - start, "cameras": summary.cameras_written}


def phase_export(args) -> dict:
    from nersemble_zarr.export_frames import export_frames

    start = time.perf_counter()
    summary = export_frames(args.store, args.work / f"export-level-{args.level}", format=args.format,
                            participant=PARTICIPANT, level=args.level, serials=_serials(args), workers=args.workers)
    return {"seconds": time.perf_counter() - start, "frames": summary.frames_written}


PHASES = phases_of(globals())


def _run(args, phase: str, level: int = 1) -> dict:
    arguments = ["--work", str(args.work), "--cameras", str(args.cameras), "--frames", str(args.frames),
                 "--workers", str(args.workers), "--level", str(level), "--format", args.format]
    return run_phase("benchmarks.bench_export_frames", phase, arguments)


def _line(label: str, export: dict, baseline: dict) -> str:
    return (f"{label}: export-frames {export['frames'] / export['seconds']:.1f} frames/s, PyAV decode -> PNG "
            f"{baseline['frames'] / baseline['seconds']:.1f} frames/s -> "
            f"ratio {baseline['seconds'] / export['seconds']:.2f} "
            f"(peak RSS {export['peak_rss_mib']:.0f} / {baseline['peak_rss_mib']:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--format", default="vhap", help="export-frames --format (the NVS sequence has no FLAME)")
    parser.add_argument("--phase", choices=sorted(PHASES))
    parser.add_argument("--work", type=Path)
    args = parse_benchmark_args(parser, {"frames": 16})
    if args.phase:
        args.root, args.store = args.work / "fetched", args.work / "store.zarr"
        report_phase(PHASES, args.phase, args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-export-frames-") as tmp:
        args.work = Path(tmp)
        _run(args, "generate")
        level_1 = (_run(args, "export"), _run(args, "decode_to_png"))
        downsampled = _run(args, "downsample")
        level_2 = (_run(args, "export", level=2), _run(args, "decode_to_png", level=2))
    print(f"full resolution {catalogue.NVS_WIDTH}x{catalogue.NVS_HEIGHT}, {args.cameras} cameras x {args.frames} "
          f"frames, {args.workers} workers, --format {args.format}")
    print(_line("(a) level 1", *level_1))
    print(_line("(b) level 2", *level_2))
    frames = args.cameras * args.frames
    print(f"    downsample --levels 2,4: {frames / downsampled['seconds']:.1f} source frames/s "
          f"(peak RSS {downsampled['peak_rss_mib']:.0f} MiB)")
    size = f"{args.cameras} cameras x {args.frames} frames, {args.workers} workers, --format {args.format}"
    append_rows(args.rows, [_row(f"(a) export-frames level 1, {size}", *level_1),
                            _row(f"(b) export-frames level 2 (after downsample), {size}", *level_2)])


def _row(what: str, export: dict, baseline: dict) -> Row:
    rate = lambda result: result["frames"] / result["seconds"]
    return Row("export_frames", what, f"{rate(export):.1f} frames/s",
               f"{rate(baseline):.1f} frames/s (PyAV decode -> PNG loop)", baseline["seconds"] / export["seconds"], "",
               peak_pair(export, baseline))


if __name__ == "__main__":
    main()
