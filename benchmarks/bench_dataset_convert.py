"""Converting the NeRSemble v2 dataset on full-size (2200 x 3208) synthetic videos, each phase in its own process.

    python -m benchmarks.bench_dataset_convert [--cameras 2] [--frames 48] [--workers 2] [--quick] [--rows FILE]

A dataset folder in the official layout is written first: participant 17, four sequences of ``--cameras`` H.264
videos (73 fps, the synthetic generator's encoder settings) of ``--frames`` camera-like frames each
(``synthetic.colour.camera_like_frame``, shifted every frame), BACKGROUND pictures, a calibration and 3-term
colour matrices. Then, each in a fresh process (so its peak resident memory is its own):

(a) ``convert -b dataset --level 4 --colour-correct`` of one sequence (``--workers`` threads) against VHAP's way,
    one frame at a time: decode (PyAV) -> resize to W // 4 x H // 4 (OpenCV bicubic, as its ffmpeg scale)
    -> the official ``correct_color`` (colour-science, as VHAP's loader) -> JPEG file (OpenCV, quality 95);
    and against decode only (PyAV, the same videos); the three take turns ``--repeats`` times, best of each;
(b) peak memory of a convert of one sequence against one of all four (same level, correction and workers; large
    blocks mapped, as the CLI's local convert does: ``allocator.map_large_blocks``): flat when the work is one
    camera's stream at a time; the four converted ``--passes`` times over in one process (the peak stays); and one
    and four on a dask.distributed LocalCluster of ``--workers`` processes (``convert --scheduler``): each worker
    process's own peak;
(c) ``--reads`` random level-4 colour-corrected frames of the converted sequence: the drop-in data manager over the
    store against the official kit over the folder, the same ``load_image`` call, each in a fresh process;
(d) bytes on disk per frame of the stored images for each frame codec at levels 1, 2 and 4 (uncorrected), against
    the mp4's bytes per frame.

Every phase imports its libraries before its clock starts (convert: numba, which the area average and the colour
correction use; VHAP: colour-science); convert's clock includes checking the inputs, probing the videos and writing the store's metadata.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.options import add_allocator_option, parse_benchmark_args
from benchmarks.phases import phases_of, report_phase, run_phase
from benchmarks.table import Row, append_rows, peak_pair

MODULE = "benchmarks.bench_dataset_convert"
PARTICIPANT = 17
SEQUENCES = ("EXP-1-head", "EXP-2-eyes", "EMO-1-shout+laugh", "SEN-01-cramp_small_danger")
HEIGHT, WIDTH = 3208, 2200


# ---------------------------------------------------------------- the dataset folder
def write_dataset(root: Path, cameras: int, frames: int) -> Path:
    """ROOT/dataset in the official layout; returns ROOT."""
    import imagecodecs

    from nersemble_zarr import catalogue
    from nersemble_zarr.sources.dataset import (
        FPS, background_path, calibration_path, colour_calibration_path, video_path,
    )
    from nersemble_zarr.synthetic.colour import camera_like_frame, near_identity_matrix
    from nersemble_zarr.synthetic.dataset import dataset_camera_params
    from nersemble_zarr.synthetic.dataset_config import SyntheticDatasetConfig
    from nersemble_zarr.synthetic.generator import VIDEO_CRF, VIDEO_PRESET, VIDEO_THREADS, VIDEO_X264_PARAMS
    from nersemble_zarr.video import VideoWriter

    folder = root / "dataset"
    serials = catalogue.SERIALS[:cameras]
    config = SyntheticDatasetConfig.full_size(participants=(PARTICIPANT,), sequences=SEQUENCES, serials=serials)
    (folder / calibration_path(PARTICIPANT)).parent.mkdir(parents=True)
    calibration = dataset_camera_params(config, PARTICIPANT)
    (folder / calibration_path(PARTICIPANT)).write_text(json.dumps({
        "world_2_cam": {s: m.tolist() for s, m in calibration["world_2_cam"].items()},
        "intrinsics": calibration["intrinsics"].tolist()}, indent=2))
    (folder / colour_calibration_path(PARTICIPANT)).write_text(json.dumps(
        {serial: near_identity_matrix(3, seed=index).tolist() for index, serial in enumerate(serials)}, indent=2))
    (folder / "metadata_participants.csv").write_text(f"ID\n{PARTICIPANT}\n")
    (folder / "metadata_sequences.csv").write_text(
        "ID,wears_glasses,BACKGROUND," + ",".join(SEQUENCES) + f"\n{PARTICIPANT},0,x," + ",".join("x" * len(SEQUENCES))
        + "\n")
    for index, serial in enumerate(serials):
        picture = camera_like_frame(HEIGHT, WIDTH, seed=index)
        path = folder / background_path(PARTICIPANT, serial)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(imagecodecs.jpeg8_encode(picture, level=95))
        for sequence in SEQUENCES:
            video = folder / video_path(PARTICIPANT, sequence, serial)
            video.parent.mkdir(parents=True, exist_ok=True)
            with VideoWriter(video, width=WIDTH, height=HEIGHT, fps=FPS, crf=VIDEO_CRF, preset=VIDEO_PRESET,
                             threads=VIDEO_THREADS, x264_params=VIDEO_X264_PARAMS) as writer:
                for frame in range(frames):
                    writer.write(np.roll(picture, 7 * frame, axis=1))
    return root


def videos_of(root: Path, sequences: tuple[str, ...]) -> list[Path]:
    return sorted(p for s in sequences for p in (root / "dataset" / f"{PARTICIPANT:03d}/sequences" / s / "images")
                  .glob("cam_*.mp4"))


# ---------------------------------------------------------------- phases (each in its own process)
def phase_convert(args) -> dict:
    # imported before the clock as the VHAP phase imports colour-science: once per process (numba's first kernel
    # call, which loads it from the disk cache and sets numba up, 0.3 s of CPU, stays inside the clock)
    import numba  # noqa: F401

    import nersemble_zarr.convert  # noqa: F401

    start, cpu = time.perf_counter(), time.process_time()
    summary = _convert(args, workers=args.workers)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_seconds": time.process_time() - cpu, "videos": summary.videos_written}


def phase_passes(args) -> dict:
    """The convert of ``phase_convert`` run ``--passes`` times in one process, each into a new store: the peak
    resident memory after each pass, which a converter that kept anything per sequence would raise every time."""
    from benchmarks.phases import peak_rss_mib

    peaks = []
    for _ in range(args.passes):
        _convert(args, workers=args.workers)
        shutil.rmtree(args.store)
        peaks.append(peak_rss_mib())
    return {"peaks_mib": peaks}


def _convert(args, **scheduling):
    """The phases' convert of ``--sequences`` into ``--store``; ``scheduling``: ``workers=`` or ``client=``. A local
    convert maps large blocks as the CLI's does, unless ``--allocator glibc`` keeps glibc's defaults."""
    from nersemble_zarr.convert import DatasetOptions, convert

    return convert(args.root, args.store, benchmarks=("dataset",), participants=(PARTICIPANT,),
                   sequences=tuple(args.sequences.split(",")), codec=args.codec,
                   dataset=DatasetOptions(level=args.level, colour_correct=args.colour_correct),
                   map_large_blocks=args.allocator == "mapped", **scheduling)


def phase_cluster(args) -> dict:
    """The same convert with ``--scheduler``: a dask.distributed LocalCluster of ``--workers`` worker processes
    (one thread each); reports each worker's own peak resident memory."""
    from distributed import Client, LocalCluster

    from benchmarks.phases import peak_rss_mib

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client:
        # the libraries and the package imported before the clock, as in the local phase
        client.run(lambda: [__import__(name) for name in ("numba", "nersemble_zarr.convert")])
        start = time.perf_counter()
        _convert(args, client=client)
        seconds = time.perf_counter() - start
        workers = client.run(peak_rss_mib)
    return {"seconds": seconds, "worker_peak_mib": max(workers.values())}


def phase_vhap(args) -> dict:
    """VHAP's preprocessing and loading, one frame at a time: decode, bicubic resize, official correction, JPEG."""
    import cv2
    from nersemble_data.util.color_correction import correct_color

    from nersemble_zarr.video import iter_frames

    matrices = json.loads((Path(args.root) / "dataset" / f"{PARTICIPANT:03d}/calibration/color_calibration.json")
                          .read_text())
    out = Path(args.store)
    out.mkdir()
    start, cpu, count = time.perf_counter(), time.process_time(), 0
    for video in videos_of(Path(args.root), tuple(args.sequences.split(","))):
        ccm = np.array(matrices[video.stem[len("cam_"):]])
        for index, frame in enumerate(iter_frames(video)):
            small = cv2.resize(frame, (WIDTH // 4, HEIGHT // 4), interpolation=cv2.INTER_CUBIC)
            corrected = correct_color(small, ccm)
            cv2.imwrite(str(out / f"{video.stem}_{index:06d}.jpg"), corrected[..., ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            count += 1
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "frames": count}


def phase_read(args) -> dict:
    """Random level-4 colour-corrected frames: the drop-in over the store, or the official kit over the folder
    (``--reader``), each ``load_image(..., as_uint8=True, apply_color_correction=True, downscale_factor=4)``."""
    import random

    from nersemble_zarr.sources.dataset import FPS  # noqa: F401 - the package imported before the clock

    if args.reader == "official":
        from nersemble_data.data.nersemble_data import NeRSembleParticipantDataManager

        manager = NeRSembleParticipantDataManager(str(Path(args.root) / "dataset"), PARTICIPANT)
    else:
        from nersemble_zarr.compat import NeRSembleParticipantDataManager

        manager = NeRSembleParticipantDataManager(args.store, PARTICIPANT)
    videos = videos_of(Path(args.root), (SEQUENCES[0],))
    picks = random.Random(0)
    keys = [(picks.choice(videos).stem[len("cam_"):], picks.randrange(args.frames)) for _ in range(args.reads)]
    times = []
    for serial, timestep in keys:
        start = time.perf_counter()
        manager.load_image(SEQUENCES[0], serial, timestep, as_uint8=True, apply_color_correction=True,
                           downscale_factor=4)
        times.append(time.perf_counter() - start)
    return {"first": times[0], "median": float(np.median(times[1:] or times))}


def phase_decode(args) -> dict:
    from nersemble_zarr.video import iter_frames

    start, cpu, count = time.perf_counter(), time.process_time(), 0
    for video in videos_of(Path(args.root), tuple(args.sequences.split(","))):
        count += sum(1 for _ in iter_frames(video))
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "frames": count}


PHASES = phases_of(globals())


def measure(phase: str, args, store: Path, sequences: tuple[str, ...], level: int = 4, colour: bool = True,
            codec: str = "zstd") -> dict:
    shutil.rmtree(store, ignore_errors=True)
    arguments = ["--root", str(args.root), "--store", str(store), "--sequences", ",".join(sequences),
                 "--level", str(level), "--codec", codec, "--workers", str(args.workers), "--passes", str(args.passes),
                 "--allocator", args.allocator]
    return run_phase(MODULE, phase, arguments + (["--colour-correct"] if colour else []))


def stored_bytes(store: Path, level: int) -> int:
    from nersemble_zarr import schema, storage

    group = schema.level_group(level, "dataset", PARTICIPANT, SEQUENCES[0])
    return int(storage.open_array(store, f"{group}/{schema.IMAGES}").nbytes_stored())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=2, help="cameras per sequence")
    parser.add_argument("--frames", type=int, default=48, help="frames per video")
    parser.add_argument("--workers", type=int, default=2, help="convert's threads")
    parser.add_argument("--codecs", nargs="+", default=["zstd", "lz4", "jpegxl-lossless", "jpegxl"])
    parser.add_argument("--reads", type=int, default=10, help="random frames read by the drop-in and the kit")
    parser.add_argument("--repeats", type=int, default=2, help="turns of the convert, VHAP and decode phases (best of)")
    parser.add_argument("--reader", choices=["ours", "official"], help=argparse.SUPPRESS)
    for name in ("phase", "root", "store", "sequences", "codec"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    parser.add_argument("--level", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--passes", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--colour-correct", action="store_true", help=argparse.SUPPRESS)
    add_allocator_option(parser)
    args = parse_benchmark_args(parser, {"frames": 16, "codecs": ["zstd", "jpegxl"]})
    if args.phase:
        report_phase(PHASES, args.phase, args)
        return
    with tempfile.TemporaryDirectory() as folder:
        args.root = write_dataset(Path(folder) / "root", args.cameras, args.frames)
        store = Path(folder) / "store.zarr"
        one = (SEQUENCES[0],)
        n = args.cameras * args.frames
        load = os.getloadavg()[0]
        print(f"{args.cameras} cameras x {args.frames} frames of {WIDTH}x{HEIGHT} per sequence; {os.cpu_count()} "
              f"CPUs, load average {load:.1f}")
        os.sync()  # the folder's files on disk before any clock starts: writing them back is not the first phase's
        # the three speeds, taking turns --repeats times (the machine's pace drifts between phases), best of each
        runs = {"convert": [], "vhap": [], "decode": []}
        for _ in range(args.repeats):
            runs["convert"].append(measure("convert", args, store, one))
            runs["vhap"].append(measure("vhap", args, Path(folder) / "vhap", one))
            runs["decode"].append(measure("decode", args, Path(folder) / "unused", one))
        ours, vhap, decode = (min(runs[name], key=lambda run: run["seconds"]) for name in ("convert", "vhap", "decode"))
        turns = {name: ", ".join(f"{n / run['seconds']:.1f}" for run in results) for name, results in runs.items()}
        print("  frames/s of each turn: " + "; ".join(f"{name} {speeds}" for name, speeds in turns.items()))
        reads = ["--root", str(args.root), "--store", str(store), "--reads", str(args.reads), "--frames",
                 str(args.frames)]
        drop_in = run_phase(MODULE, "read", [*reads, "--reader", "ours"])
        kit = run_phase(MODULE, "read", [*reads, "--reader", "official"])
        every = measure("convert", args, store, SEQUENCES)
        passes = measure("passes", args, store, SEQUENCES)["peaks_mib"]
        cluster_one = measure("cluster", args, store, one)
        cluster_every = measure("cluster", args, store, SEQUENCES)
        rows = [
            Row("dataset convert", f"convert --level 4 --colour-correct, {n} full-size frames, {args.workers} "
                f"workers (load {load:.1f})", f"{n / ours['seconds']:.1f} frames/s",
                f"{n / vhap['seconds']:.1f} frames/s (decode, bicubic resize, official correct_color, JPEG)",
                vhap["seconds"] / ours["seconds"], "target 2x", peak_pair(ours, vhap)),
            Row("dataset convert", f"a random level-4 corrected frame, load_image(downscale_factor=4, "
                f"apply_color_correction=True), median of {args.reads - 1} after the first",
                f"{drop_in['median'] * 1000:.1f} ms (the drop-in over the store; first "
                f"{drop_in['first'] * 1000:.0f} ms)",
                f"{kit['median'] * 1000:.0f} ms (the official kit over the folder; first {kit['first'] * 1000:.0f} ms)",
                kit["median"] / drop_in["median"], "target 100x", peak_pair(drop_in, kit)),
            Row("dataset convert", "the same convert against decode only (PyAV, 1 process)",
                f"{n / ours['seconds']:.1f} frames/s", f"{n / decode['seconds']:.1f} frames/s (decode only)",
                decode["seconds"] / ours["seconds"], "decode bounds it", peak_pair(ours, decode)),
            Row("dataset convert", f"peak memory: convert of 1 sequence against {len(SEQUENCES)} sequences "
                f"({len(SEQUENCES) * n} frames)", f"{ours['peak_rss_mib']:.0f} MiB (1 sequence)",
                f"{every['peak_rss_mib']:.0f} MiB ({len(SEQUENCES)} sequences)",
                ours["peak_rss_mib"] / every["peak_rss_mib"], "flat: ratio near 1", peak_pair(ours, every)),
            Row("dataset convert", f"peak memory: the {len(SEQUENCES)} sequences converted {len(passes)} times over "
                f"in one process", f"{passes[-1]:.0f} MiB after {len(passes) * len(SEQUENCES)} sequences (after each "
                f"pass: {', '.join(f'{p:.0f}' for p in passes)})",
                f"{every['peak_rss_mib']:.0f} MiB ({len(SEQUENCES)} sequences)",
                every["peak_rss_mib"] / passes[-1], "bounded: ratio near 1", f"{passes[-1]:.0f} / "
                f"{every['peak_rss_mib']:.0f} MiB"),
            Row("dataset convert", f"--scheduler on a LocalCluster of {args.workers} worker processes: peak of a "
                f"worker, 1 against {len(SEQUENCES)} sequences", f"{cluster_one['worker_peak_mib']:.0f} MiB, "
                f"{n / cluster_one['seconds']:.1f} frames/s (1 sequence)",
                f"{cluster_every['worker_peak_mib']:.0f} MiB, {len(SEQUENCES) * n / cluster_every['seconds']:.1f} "
                f"frames/s ({len(SEQUENCES)} sequences)",
                cluster_one["worker_peak_mib"] / cluster_every["worker_peak_mib"], "flat: ratio near 1",
                f"{cluster_one['worker_peak_mib']:.0f} / {cluster_every['worker_peak_mib']:.0f} MiB (a worker)"),
        ]
        for row in rows:
            print(f"  {row.what}: {row.ours} against {row.baseline}: {row.ratio:.2f}; peak {row.peak_mib}")
        print("  CPU per frame (all threads of the process): " + ", ".join(
            f"{name} {result['cpu_seconds'] / n * 1000:.0f} ms" for name, result in
            (("convert", ours), ("VHAP's way", vhap), ("decode only", decode))))
        mp4 = sum(p.stat().st_size for p in videos_of(args.root, one)) / n
        for codec in args.codecs:
            for level in (1, 2, 4):
                result = measure("convert", args, store, one, level=level, colour=False, codec=codec)
                per_frame = stored_bytes(store, level) / n
                what = f"bytes per frame, {codec}, level {level} ({WIDTH // level}x{HEIGHT // level})"
                print(f"  {what}: {per_frame / 1024:.0f} KiB against the mp4's {mp4 / 1024:.0f} KiB "
                      f"({per_frame / mp4:.1f}x the mp4)")
                rows.append(Row("dataset convert", what, f"{per_frame / 1024:.0f} KiB",
                                f"{mp4 / 1024:.0f} KiB (mp4, full size)", mp4 / per_frame,
                                "size relative to the mp4", f"{result['peak_rss_mib']:.0f} MiB / -"))
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    append_rows(args.rows, rows)


if __name__ == "__main__":
    main()
