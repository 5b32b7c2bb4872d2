"""Convert throughput on a dask.distributed LocalCluster of 1 vs N worker processes (full-resolution videos).

    python -m benchmarks.bench_scaling --cameras 4 --frames 100 --workers 1 2 --repeat 3

Generates a full-resolution synthetic NVS sequence (``--cameras`` train cameras x ``--frames`` frames, images
and alpha videos), then converts it ``--repeat`` times per entry of ``--workers`` (alternating) on a fresh
LocalCluster with that many worker processes of one thread each, passing ``client=`` and ``workers=`` (so
each task decodes with cores // workers threads) to ``convert``. The fastest run of each configuration
counts; the first entry is the baseline of the speed-up ratio. Peak memory is the peak resident set size of
each worker process, read from the workers at the end of the run (fresh processes per cluster), and of
this process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.options import parse_benchmark_args
from benchmarks.phases import peak_rss_mib
from benchmarks.table import Row, append_rows
from nersemble_zarr import catalogue

PARTICIPANT = 388


def generate_videos(root: Path, cameras: int, frames: int, workers: int) -> int:
    """Write the full-resolution sequence; return the number of frames across all videos."""
    from nersemble_zarr.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(
        scale=1.0, n_frames=frames, nvs_participants=(PARTICIPANT,),
        nvs_serials=catalogue.NVS_TRAIN_SERIALS[:cameras], mono_participants=(), svfr_participants=(), n_points=1000,
    )
    generate(root, config, workers=workers)
    return 2 * cameras * config.n_frames_of("nvs", PARTICIPANT, catalogue.NVS_SEQUENCES[PARTICIPANT])


def convert_on_cluster(root: Path, store: Path, n_workers: int) -> dict:
    """Convert ``root`` into ``store`` on a fresh LocalCluster; wall time and per-worker peak RSS."""
    from distributed import Client, LocalCluster

    from nersemble_zarr.convert import convert

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.run(lambda: __import__("nersemble_zarr.convert"))  # imports are not part of the measurement
            start = time.perf_counter()
            summary = convert(root, store, benchmarks=("nvs",), workers=n_workers, client=client)
            seconds = time.perf_counter() - start
            peaks = client.run(peak_rss_mib)
    return {"seconds": seconds, "videos": summary.videos_written, "worker_peak_mib": sorted(peaks.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=4, help="train cameras to generate (at most 13)")
    parser.add_argument("--frames", type=int, default=100, help="frames per camera")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker processes per run")
    parser.add_argument("--repeat", type=int, default=3, help="conversions per configuration; the fastest counts")
    args = parse_benchmark_args(parser, {"cameras": 2, "frames": 30, "repeat": 1})
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        start = time.perf_counter()
        frames = generate_videos(Path(tmp) / "fetched", args.cameras, args.frames, workers=os.cpu_count() or 1)
        size = f"{catalogue.NVS_WIDTH}x{catalogue.NVS_HEIGHT}"
        print(f"generated {args.cameras} cameras x {args.frames} frames at {size} "
              f"(images + alpha: {frames} frames) in {time.perf_counter() - start:.0f} s on {os.cpu_count()} cores")
        runs: dict[int, list[dict]] = {n: [] for n in args.workers}
        for repeat in range(args.repeat):  # alternate the configurations so load changes hit them alike
            for n in args.workers:
                runs[n].append(convert_on_cluster(Path(tmp) / "fetched", Path(tmp) / f"store-{n}-{repeat}.zarr", n))
                shutil.rmtree(Path(tmp) / f"store-{n}-{repeat}.zarr")
    best = {n: min(run["seconds"] for run in results) for n, results in runs.items()}
    rows = []
    first = args.workers[0]
    for n, results in runs.items():
        peaks = max((run["worker_peak_mib"] for run in results), key=sum)
        if n != first:
            first_peaks = max((run["worker_peak_mib"] for run in runs[first]), key=sum)
            rows.append(Row("scaling", f"convert on a LocalCluster of {n} vs {first} worker process(es), "
                            f"{args.cameras} cameras x {args.frames} frames, best of {args.repeat}",
                            f"{frames / best[n]:.1f} frames/s", f"{frames / best[first]:.1f} frames/s ({first} worker(s))",
                            best[first] / best[n], f"{n / first:g}x (linear in the workers)",
                            f"{sum(peaks):.0f} / {sum(first_peaks):.0f} MiB (sum over workers)"))
        times = ", ".join(f"{run['seconds']:.1f}" for run in results)
        print(f"LocalCluster {n} worker process(es): best {best[n]:.1f} s of {times} s, "
              f"{frames / best[n]:.1f} frames/s, "
              f"{results[0]['videos']} videos; speed-up vs {args.workers[0]}: {best[args.workers[0]] / best[n]:.2f}x; "
              f"peak RSS per worker {' / '.join(f'{p:.0f}' for p in peaks)} MiB (sum {sum(peaks):.0f} MiB)")
    print(f"peak RSS of the client process: {peak_rss_mib():.0f} MiB; "
          f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    append_rows(args.rows, rows)


if __name__ == "__main__":
    main()
