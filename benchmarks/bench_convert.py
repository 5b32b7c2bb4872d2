"""Convert and read benchmarks on full-resolution synthetic NVS videos, each phase in its own process.

    python -m benchmarks.bench_convert --cameras 2 --frames 300 --workers 2

(a) random single-frame reads from the store vs the official toolkit's way (OpenCV seek + read);
(b) streaming a whole camera through dask vs plain PyAV decode of the mp4;
(c) convert throughput vs decode-only throughput of the same videos with the same workers;
(d) bytes on disk per frame for each codec vs the mp4, and PSNR for the lossy codec.
Read times are medians of single timed reads after one untimed warm-up read.
Peak memory is the peak resident set size of the process that ran the phase.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.phases import phases_of, report_phase, run_phase
from nersemble_zarr import catalogue

PARTICIPANT, SEQUENCE = 388, "GLASSES"
CODECS = ("zstd", "lz4", "jpegxl-lossless", "jpegxl")




def _videos(root: Path) -> list[Path]:
    folder = root / "nvs" / f"{PARTICIPANT:03d}" / "sequences" / SEQUENCE
    return sorted((folder / "images").glob("*.mp4")) + sorted((folder / "alpha_maps").glob("*.mp4"))


def phase_generate(args) -> dict:
    from nersemble_zarr.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(
        scale=1.0, n_frames=args.frames, nvs_participants=(PARTICIPANT,),
        nvs_serials=catalogue.NVS_TRAIN_SERIALS[: args.cameras], mono_participants=(), n_points=1000,
    )
    start = time.perf_counter()
    generate(args.root, config)
    return {"seconds": time.perf_counter() - start}


def phase_decode(args) -> dict:
    from nersemble_zarr.parallel import run_tasks
    from nersemble_zarr.video import iter_frames

    def decode(path: Path) -> int:
        return sum(1 for _ in iter_frames(path, gray="alpha_maps" in path.parts, threads=max(1, 2 // args.workers)))

    start = time.perf_counter()
    frames = sum(run_tasks(decode, _videos(args.root), workers=args.workers))
    return {"seconds": time.perf_counter() - start, "frames": frames}


def phase_convert(args) -> dict:
    from nersemble_zarr.convert import convert

    store = _store_path(args)
    start = time.perf_counter()
    convert(args.root, store, benchmarks=("nvs",), codec=args.codec, workers=args.workers)
    seconds = time.perf_counter() - start
    import zarr

    images = zarr.open_array(store, path=f"nvs/{PARTICIPANT}/{SEQUENCE}/images", mode="r")
    result = {"seconds": seconds, "images_bytes": int(images.nbytes_stored())}
    if args.codec == "jpegxl":
        result["psnr_db"] = _psnr(args.root, store)
    return result


def _psnr(root: Path, store: Path) -> float:
    from nersemble_zarr import store as store_module
    from nersemble_zarr.video import iter_frames

    dataset = store_module.sequence(store_module.open(store), "nvs", PARTICIPANT)
    serial = dataset.attrs["video_serials"][0]
    source = root / "nvs" / catalogue.video_path(PARTICIPANT, SEQUENCE, serial)
    errors = [
        np.mean((dataset.images.sel(serial=serial).isel(timestep=i).values.astype(np.float64) - frame) ** 2)
        for i, frame in enumerate(iter_frames(source))
    ]
    return float(10 * np.log10(255**2 / np.mean(errors)))


def _random_picks(args, n_frames: int) -> list[tuple[str, int]]:
    rng = np.random.default_rng(0)
    serials = catalogue.NVS_TRAIN_SERIALS[: args.cameras]
    return [(serials[rng.integers(len(serials))], int(rng.integers(n_frames))) for _ in range(args.reads)]


def _time_reads(picks: list[tuple[str, int]], read: Callable[[str, int], np.ndarray]) -> dict:
    """One untimed warm-up read (imports, file handles, shard index caches), then each pick timed alone."""
    read(*picks[0])
    times = []
    for serial, index in picks:
        start = time.perf_counter()
        frame = read(serial, index)
        times.append(time.perf_counter() - start)
        assert frame.shape == (catalogue.NVS_HEIGHT, catalogue.NVS_WIDTH, 3)
    return {"median_ms": 1000 * float(np.median(times)), "mean_ms": 1000 * float(np.mean(times)), "reads": len(times)}


def _store_path(args) -> Path:
    return args.work / f"{args.codec}.zarr"


def phase_read_store(args) -> dict:
    """Random reads through xarray without dask (``open(dask=False)``): one chunk decoded per frame."""
    return _read_store(args, dask=False)


def phase_read_store_dask(args) -> dict:
    """Random reads through the default dask-backed tree (a small task graph per read)."""
    return _read_store(args, dask=True)


def _read_store(args, dask: bool) -> dict:
    from nersemble_zarr import store as store_module

    dataset = store_module.sequence(store_module.open(_store_path(args), dask=dask), "nvs", PARTICIPANT)
    return _time_reads(_random_picks(args, dataset.sizes["timestep"]),
                       lambda serial, index: dataset.images.sel(serial=serial).isel(timestep=index).values)


def phase_read_zarr(args) -> dict:
    """Random reads straight from the zarr array, as the PyTorch FrameDataset does."""
    import zarr

    from nersemble_zarr import store as store_module

    path = _store_path(args)
    dataset = store_module.sequence(store_module.open(path, dask=False), "nvs", PARTICIPANT)
    serial_index = {serial: i for i, serial in enumerate(dataset.serial.values)}
    images = zarr.open_array(path, path=f"nvs/{PARTICIPANT}/{SEQUENCE}/images", mode="r")
    return _time_reads(_random_picks(args, dataset.sizes["timestep"]),
                       lambda serial, index: images[serial_index[serial], index])


def phase_read_opencv(args) -> dict:
    """The official toolkit's way: OpenCV capture per camera (kept open), seek to the frame, read, BGR -> RGB."""
    import cv2

    captures = {}

    def read(serial: str, index: int) -> np.ndarray:
        if serial not in captures:
            video = args.root / "nvs" / catalogue.video_path(PARTICIPANT, SEQUENCE, serial)
            captures[serial] = cv2.VideoCapture(str(video))
        capture = captures[serial]
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    return _time_reads(_random_picks(args, args.frames), read)


def phase_stream_store(args) -> dict:
    """Every frame of one camera through dask (threads), reduced by the same numpy mean as the PyAV loop.

    (dask's own ``mean`` converts each 5 MiB frame to float64 first and would measure that, not streaming.)
    """
    import dask

    from nersemble_zarr import store as store_module

    dataset = store_module.sequence(store_module.open(_store_path(args)), "nvs", PARTICIPANT)
    frames = dataset.images.sel(serial=catalogue.NVS_TRAIN_SERIALS[0]).data  # (timestep, y, x, channel)
    means = frames.map_blocks(lambda block: block.mean(axis=(1, 2, 3)), drop_axis=(1, 2, 3), dtype=np.float64)
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        values = means.compute()
    return {"seconds": time.perf_counter() - start, "frames": int(values.size)}


def phase_stream_pyav(args) -> dict:
    from nersemble_zarr.video import iter_frames

    path = args.root / "nvs" / catalogue.video_path(PARTICIPANT, SEQUENCE, catalogue.NVS_TRAIN_SERIALS[0])
    start = time.perf_counter()
    means = [frame.mean() for frame in iter_frames(path)]
    return {"seconds": time.perf_counter() - start, "frames": len(means)}


PHASES = phases_of(globals())


def _run(args, phase: str, **extra) -> dict:
    arguments = ["--root", str(args.root), "--work", str(args.work), "--cameras", str(args.cameras),
                 "--frames", str(args.frames), "--workers", str(args.workers), "--reads", str(args.reads)]
    for key, value in extra.items():
        arguments += [f"--{key}", str(value)]
    return run_phase("benchmarks.bench_convert", phase, arguments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reads", type=int, default=60)
    parser.add_argument("--codec", default="zstd")
    parser.add_argument("--phase", choices=sorted(PHASES))
    parser.add_argument("--root", type=Path, help="a synthetic fetch of --cameras x --frames to reuse (default: generate one)")
    parser.add_argument("--work", type=Path)
    args = parser.parse_args()
    if args.phase:
        report_phase(PHASES, args.phase, args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        args.work = Path(tmp)
        if args.root is None:
            args.root = args.work / "fetched"
            _run(args, "generate")
        n_videos = len(_videos(args.root))
        mp4_bytes = sum(p.stat().st_size for p in _videos(args.root)[: n_videos // 2])
        decode = _run(args, "decode")
        results = {codec: _run(args, "convert", codec=codec) for codec in CODECS}
        cv_read = _run(args, "read_opencv")
        reads = {(phase, codec): _run(args, phase, codec=codec)
                 for codec in ("zstd", "lz4") for phase in ("read_store", "read_store_dask", "read_zarr")}
        stream_store, stream_pyav = _run(args, "stream_store", codec="zstd"), _run(args, "stream_pyav")
    frames = args.frames * args.cameras
    print(f"full resolution {catalogue.NVS_WIDTH}x{catalogue.NVS_HEIGHT}, {args.cameras} cameras x {args.frames} frames "
          f"(images + alpha = {n_videos} videos), {args.workers} workers")
    print(f"(a) random single-frame read, median of {args.reads}: OpenCV seek + read {cv_read['median_ms']:.1f} ms "
          f"(peak RSS {cv_read['peak_rss_mib']:.0f} MiB)")
    for (phase, codec), result in reads.items():
        print(f"    {phase:<16} {codec:<5} {result['median_ms']:6.2f} ms (mean {result['mean_ms']:6.2f}) -> "
              f"{cv_read['median_ms'] / result['median_ms']:5.1f}x faster (peak RSS {result['peak_rss_mib']:.0f} MiB)")
    print(f"(b) stream one camera: dask over the store {stream_store['frames'] / stream_store['seconds']:.1f} frames/s, "
          f"PyAV decode {stream_pyav['frames'] / stream_pyav['seconds']:.1f} frames/s -> "
          f"{stream_pyav['seconds'] / stream_store['seconds']:.2f}x (peak RSS {stream_store['peak_rss_mib']:.0f} / "
          f"{stream_pyav['peak_rss_mib']:.0f} MiB)")
    print(f"(c) decode only {decode['frames'] / decode['seconds']:.1f} frames/s (peak RSS {decode['peak_rss_mib']:.0f} MiB)")
    print(f"(d) bytes per RGB frame: mp4 {mp4_bytes / frames / 1024:.0f} KiB; raw {catalogue.NVS_WIDTH * catalogue.NVS_HEIGHT * 3 / 1024:.0f} KiB")
    for codec, result in results.items():
        psnr = f", PSNR {result['psnr_db']:.1f} dB" if "psnr_db" in result else ""
        print(f"    {codec:<16} {result['images_bytes'] / frames / 1024:8.0f} KiB "
              f"({result['images_bytes'] / mp4_bytes:.1f}x the mp4){psnr}; convert {decode['frames'] / result['seconds']:.1f} "
              f"frames/s = {decode['seconds'] / result['seconds']:.2f} of decode-only (peak RSS {result['peak_rss_mib']:.0f} MiB)")


if __name__ == "__main__":
    main()
