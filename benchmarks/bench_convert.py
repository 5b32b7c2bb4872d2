"""Convert and read benchmarks on full-resolution synthetic NVS videos, each phase in its own process.

    python -m benchmarks.bench_convert --cameras 2 --frames 300 --workers 2 [--quick] [--rows FILE]

(a) random single-frame reads through every documented path (``benchmarks.read_paths``), cold and warm, held
    against the raw limit (the chunk's bytes read and decompressed by hand, ``benchmarks.raw_chunks``) and
    the official toolkit's way (OpenCV ``CAP_PROP_POS_FRAMES`` seek + read of the mp4). Cold = the first
    read of each camera in a fresh process after opening (its first touch of that camera's shard file: for
    the raw limit, the shard index read included); warm = the median of the ``--reads`` later reads of random
    (camera, frame) picks. ``--runs`` fresh processes per path; medians over all of them. Every store path
    must return the same frames (checked by digest);
(b) streaming a whole camera through dask vs plain PyAV decode of the mp4;
(c) convert throughput vs decode-only throughput of the same videos with the same ``--workers`` (convert as the
    CLI runs it: ``--allocator mapped``, the default);
(d) single-threaded, each phase pinned to one core, on the same frames (every video of the sequence; the
    point clouds left out, so that convert's work beyond the baseline is writing the store):
    PyAV decode only (1 decoder thread), decode + compress each frame with the store's own compressor,
    and the real convert (workers=1, so 1 decoder thread; zarr's thread pool bounded to 1 worker with
    ``threading.max_workers``); zarr's write overhead = convert / (decode + compress) - 1;
(e) bytes on disk per frame for each codec vs the mp4, and PSNR for the lossy codec;
(f) 15 random ``store.frame`` reads right after ``sequence()`` in a fresh process against 15 warm ones (after a
    read from every shard), ``--runs`` processes per codec.
Peak memory is the peak resident set size of the process that ran the phase.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.options import add_allocator_option, parse_benchmark_args
from benchmarks.phases import phases_of, report_phase, run_phase
from benchmarks.read_paths import GROUP, LIMIT_OF, PARTICIPANT, READ_PATHS, SEQUENCE
from benchmarks.table import Row, append_rows, peak_pair
from nersemble_zarr import catalogue

CODECS = ("zstd", "lz4", "jpegxl-lossless", "jpegxl")
SINGLE_CORE_CODECS = ("zstd", "lz4")
LZ4_CONVERT_TARGET = 0.75
WRITE_OVERHEAD_TARGET = 0.10
READ_LIMIT_TARGET = 2.0
QUICK = {"frames": 100, "reads": 20, "runs": 3}


def _videos(root: Path) -> list[Path]:
    folder = root / "nvs" / f"{PARTICIPANT:03d}" / "sequences" / SEQUENCE
    return sorted((folder / "images").glob("*.mp4")) + sorted((folder / "alpha_maps").glob("*.mp4"))


def _image_video(root: Path, serial: str) -> Path:
    return root / "nvs" / catalogue.video_path(PARTICIPANT, SEQUENCE, serial)


def _serials(args) -> tuple[str, ...]:
    return catalogue.NVS_TRAIN_SERIALS[: args.cameras]


def _store_path(args, suffix: str = "") -> Path:
    return args.work / f"{args.codec}{suffix}.zarr"


def phase_generate(args) -> dict:
    from nersemble_zarr.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(
        scale=1.0, n_frames=args.frames, nvs_participants=(PARTICIPANT,),
        nvs_serials=_serials(args), mono_participants=(), svfr_participants=(), n_points=1000,
    )
    start = time.perf_counter()
    generate(args.root, config, workers=os.cpu_count() or 1)
    return {"seconds": time.perf_counter() - start}


# ---------------------------------------------------------------- (c) convert vs decode, --workers
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
    convert(args.root, store, benchmarks=("nvs",), codec=args.codec, workers=args.workers,
            map_large_blocks=args.allocator == "mapped")
    seconds = time.perf_counter() - start
    import zarr

    images = zarr.open_array(store, path=f"{GROUP}/images", mode="r")
    result = {"seconds": seconds, "images_bytes": int(images.nbytes_stored())}
    if args.codec == "jpegxl":
        result["psnr_db"] = _psnr(args.root, store)
    return result


def _psnr(root: Path, store: Path) -> float:
    from nersemble_zarr import store as store_module
    from nersemble_zarr.video import iter_frames

    dataset = store_module.sequence(store_module.open(store), "nvs", PARTICIPANT)
    serial = dataset.attrs["video_serials"][0]
    errors = [
        np.mean((dataset.images.sel(serial=serial).isel(timestep=i).values.astype(np.float64) - frame) ** 2)
        for i, frame in enumerate(iter_frames(_image_video(root, serial)))
    ]
    return float(10 * np.log10(255**2 / np.mean(errors)))


# ---------------------------------------------------------------- (d) single-threaded, one core
def _one_core() -> None:
    """Pin this process (and every thread it starts from now on) to one core, and make ``os.cpu_count``
    say so, as Python 3.13's ``os.process_cpu_count`` would: convert gives each worker cores // workers
    decoder threads. Blosc compresses without its own threads, as it does inside zarr's thread pool."""
    import numcodecs.blosc

    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    os.cpu_count = lambda: 1
    numcodecs.blosc.use_threads = False


def _without_pointclouds(root: Path, target: Path) -> Path:
    """A copy of the fetched tree (hard links where possible) without the point clouds: what convert then
    does beyond the decode + compress baseline is writing the store (and its metadata)."""
    for source in root.rglob("*"):
        if source.is_file() and "pointclouds" not in source.parts:
            copy = target / source.relative_to(root)
            copy.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, copy)
            except OSError:
                shutil.copy2(source, copy)
    return target


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def store_compressor(codec_name: str) -> Callable[[np.ndarray], bytes]:
    """``encode(frame)`` of the compressor the store uses for ``codec_name``: the numcodecs codec that zarr's
    own codec object (``frame_codecs``' encoding) calls for every chunk inside a shard."""
    from zarr.codecs import BloscCodec, ZstdCodec

    from nersemble_zarr.frame_codecs import frame_codec

    (compressor,) = frame_codec(codec_name).zarr_encoding()["compressors"]
    if isinstance(compressor, ZstdCodec):
        return compressor._zstd_codec.encode
    if isinstance(compressor, BloscCodec):
        return compressor._blosc_codec.encode
    raise ValueError(f"No single-threaded compress baseline for the {codec_name} codec ({type(compressor).__name__}).")


def _decode_all(args, per_frame: Callable[[np.ndarray], int]) -> dict:
    """Decode every video of the sequence with one decoder thread, calling ``per_frame`` on each frame."""
    from nersemble_zarr.video import iter_frames

    _one_core()
    cpu, start = _cpu_seconds(), time.perf_counter()
    frames = nbytes = 0
    for path in _videos(args.root):
        for frame in iter_frames(path, gray="alpha_maps" in path.parts, threads=1):
            nbytes += per_frame(frame)
            frames += 1
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "frames": frames, "bytes": nbytes, "cpu_seconds": _cpu_seconds() - cpu}


def phase_decode_single(args) -> dict:
    return _decode_all(args, lambda frame: 0)


def phase_compress_single(args) -> dict:
    compress = store_compressor(args.codec)
    return _decode_all(args, lambda frame: len(compress(np.ascontiguousarray(frame))))


def phase_convert_single(args) -> dict:
    import zarr
    import zarr.core.sync

    from nersemble_zarr.convert import convert

    with contextlib.suppress(ImportError):  # dask's first compute imports it to look for a client: not measured
        import distributed  # noqa: F401
    _one_core()
    zarr.config.set({"threading.max_workers": 1})
    store = _store_path(args, "-single")
    cpu, start = _cpu_seconds(), time.perf_counter()
    convert(args.root, store, benchmarks=("nvs",), codec=args.codec, workers=1)
    seconds = time.perf_counter() - start
    executor = zarr.core.sync._executor
    pool_threads = len(executor._threads) if executor is not None else 0
    if executor is None or executor._max_workers != 1 or pool_threads > 1:
        raise RuntimeError(f"zarr's thread pool was not bounded to one worker ({pool_threads} threads)")
    stored = sum(int(zarr.open_array(store, path=f"{GROUP}/{name}", mode="r").nbytes_stored())
                 for name in ("images", "alpha"))
    return {"seconds": seconds, "bytes": stored, "zarr_pool_threads": pool_threads, "cpu_seconds": _cpu_seconds() - cpu}


# ---------------------------------------------------------------- (a) random reads
def _timed(read: Callable[[str, int], np.ndarray], serial: str, position: int, digest) -> float:
    start = time.perf_counter()
    frame = read(serial, position)
    seconds = time.perf_counter() - start
    if frame.shape != (catalogue.NVS_HEIGHT, catalogue.NVS_WIDTH, 3):
        raise RuntimeError(f"read {serial} {position}: shape {frame.shape}")
    digest.update(np.rint(frame * 255).astype(np.uint8) if frame.dtype != np.uint8 else np.ascontiguousarray(frame))
    return 1000 * seconds


def phase_read(args) -> dict:
    """Open with ``--path``, then the cold reads (first read of each camera) and ``--reads`` warm ones."""
    rng = np.random.default_rng(args.run)
    start = time.perf_counter()
    read = READ_PATHS[args.path][1](_store_path(args), lambda serial: _image_video(args.root, serial))
    open_ms = 1000 * (time.perf_counter() - start)
    serials = list(_serials(args))
    rng.shuffle(serials)
    digest = hashlib.blake2b()
    cold = [_timed(read, serial, int(rng.integers(args.frames)), digest) for serial in serials]
    warm = [_timed(read, serials[rng.integers(len(serials))], int(rng.integers(args.frames)), digest)
            for _ in range(args.reads)]
    return {"open_ms": open_ms, "cold_ms": cold, "warm_ms": warm, "digest": digest.hexdigest()}


# ---------------------------------------------------------------- (f) a fresh process's random reads
FRESH_READS = 15
FRESH_TARGET = 2.0


def phase_fresh_reads(args) -> dict:
    """``FRESH_READS`` random ``nz.frame`` reads right after ``sequence()`` in a fresh process, then, after one
    read from every shard, ``FRESH_READS`` more (warm)."""
    from nersemble_zarr import store as nz

    rng = np.random.default_rng(args.run)
    start = time.perf_counter()
    dataset = nz.sequence(nz.open(_store_path(args), dask=False), "nvs", PARTICIPANT)
    open_ms = 1000 * (time.perf_counter() - start)
    serials, timesteps = list(_serials(args)), [int(t) for t in dataset.timestep.values]
    digest = hashlib.blake2b()

    def reads() -> list[float]:
        picks = [(serials[rng.integers(len(serials))], int(rng.integers(len(timesteps)))) for _ in range(FRESH_READS)]
        return [_timed(lambda s, p: nz.frame(dataset, s, timesteps[p]), s, p, digest) for s, p in picks]

    fresh = reads()
    for serial in serials:
        for position in range(0, len(timesteps), 32):
            nz.frame(dataset, serial, timesteps[position])
    return {"open_ms": open_ms, "fresh_ms": fresh, "warm_ms": reads()}


def _fresh_reads(args, codec: str) -> dict:
    runs = [_run(args, "fresh_reads", codec=codec, run=run) for run in range(args.runs)]
    fresh = [t for r in runs for t in r["fresh_ms"]]
    warm = [t for r in runs for t in r["warm_ms"]]
    return {"fresh_ms": float(np.median(fresh)), "fresh_mean_ms": float(np.mean(fresh)), "fresh_max_ms": max(fresh),
            "first_ms": float(np.median([r["fresh_ms"][0] for r in runs])), "warm_ms": float(np.median(warm)),
            "open_ms": float(np.median([r["open_ms"] for r in runs])),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}


# ---------------------------------------------------------------- (b) streaming
def phase_stream_store(args) -> dict:
    """Every frame of one camera through dask (threads), reduced by the same numpy mean as the PyAV loop.

    (dask's own ``mean`` converts each 5 MiB frame to float64 first and would measure that, not streaming.)
    """
    import dask

    from nersemble_zarr import store as store_module

    dataset = store_module.sequence(store_module.open(_store_path(args)), "nvs", PARTICIPANT)
    frames = dataset.images.sel(serial=_serials(args)[0]).data  # (timestep, y, x, channel)
    means = frames.map_blocks(lambda block: block.mean(axis=(1, 2, 3)), drop_axis=(1, 2, 3), dtype=np.float64)
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        values = means.compute()
    return {"seconds": time.perf_counter() - start, "frames": int(values.size)}


def phase_stream_pyav(args) -> dict:
    from nersemble_zarr.video import iter_frames

    start = time.perf_counter()
    means = [frame.mean() for frame in iter_frames(_image_video(args.root, _serials(args)[0]))]
    return {"seconds": time.perf_counter() - start, "frames": len(means)}


PHASES = phases_of(globals())


# ---------------------------------------------------------------- driver
def _run(args, phase: str, **extra) -> dict:
    arguments = ["--root", str(args.root), "--work", str(args.work), "--cameras", str(args.cameras),
                 "--frames", str(args.frames), "--workers", str(args.workers), "--reads", str(args.reads)]
    for key, value in extra.items():
        arguments += [f"--{key}", str(value)]
    return run_phase("benchmarks.bench_convert", phase, arguments)


def _reads(args, path: str, codec: str) -> dict:
    """Every run of one read path: cold and warm medians over all runs, the largest peak memory."""
    runs = [_run(args, "read", codec=codec, path=path, run=run) for run in range(args.runs)]
    return {
        # The process's first read also pays one-time imports (xarray imports dask.array on its first
        # indexing, zarr starts its event loop): reported as first_ms, and left out of the cold median.
        "cold_ms": float(np.median([t for r in runs for t in r["cold_ms"][1:]])),
        "first_ms": float(np.median([r["cold_ms"][0] for r in runs])),
        "warm_ms": float(np.median([t for r in runs for t in r["warm_ms"]])),
        "open_ms": float(np.median([r["open_ms"] for r in runs])),
        "digests": [r["digest"] for r in runs],
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
    }


def _read_rows(codec: str, reads: dict[str, dict], opencv: dict) -> list[Row]:
    rows = []
    for kind in ("cold", "warm"):
        for path, result in reads.items():
            limit = reads[LIMIT_OF[path]][f"{kind}_ms"]
            ours, baseline = result[f"{kind}_ms"], opencv[f"{kind}_ms"]
            held = ("the limit" if path == LIMIT_OF[path]
                    else f"raw {limit:.2f} ms; ours = {ours / limit:.2f}x it (target <= {READ_LIMIT_TARGET:g}x)")
            rows.append(Row("convert", f"(a) random frame read, {kind}: {READ_PATHS[path][0]}, {codec}",
                            f"{ours:.2f} ms", f"{baseline:.1f} ms (OpenCV seek + read)", baseline / ours, held,
                            peak_pair(result, opencv)))
    return rows


def _fps(result: dict) -> float:
    return result["frames"] / result["seconds"]


def _cpu_per_wall(result: dict) -> float:
    return result["cpu_seconds"] / result["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reads", type=int, default=60, help="warm reads per process")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per read path (cold reads: cameras per run)")
    parser.add_argument("--read-codecs", default="zstd,lz4", help="codecs whose stores are read in (a)")
    parser.add_argument("--codec", default="zstd", help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=sorted(READ_PATHS), help=argparse.SUPPRESS)
    parser.add_argument("--run", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help="a synthetic fetch of --cameras x --frames to reuse (default: generate one)")
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    add_allocator_option(parser)
    args = parse_benchmark_args(parser, QUICK)
    if args.phase:
        report_phase(PHASES, args.phase, args)
        return
    read_codecs = args.read_codecs.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        args.work = Path(tmp)
        if args.root is None:
            args.root = args.work / "fetched"
            _run(args, "generate")
        n_videos = len(_videos(args.root))
        mp4_bytes = sum(p.stat().st_size for p in _videos(args.root)[: n_videos // 2])
        decode = _run(args, "decode")
        converts = {codec: _run(args, "convert", codec=codec, allocator=args.allocator) for codec in CODECS}
        fetched, args.root = args.root, _without_pointclouds(args.root, args.work / "videos-only")
        decode_single = _run(args, "decode_single")
        single = {codec: (_run(args, "compress_single", codec=codec), _run(args, "convert_single", codec=codec))
                  for codec in SINGLE_CORE_CODECS}
        args.root = fetched
        opencv = _reads(args, "opencv", "zstd")
        reads = {codec: {path: _reads(args, path, codec) for path in READ_PATHS if path != "opencv"}
                 for codec in read_codecs}
        fresh = {codec: _fresh_reads(args, codec) for codec in read_codecs}
        stream_store, stream_pyav = _run(args, "stream_store", codec="zstd"), _run(args, "stream_pyav")
    for codec, by_path in reads.items():
        digests = {path: result["digests"] for path, result in by_path.items()}
        if len({tuple(d) for d in digests.values()}) != 1:
            raise RuntimeError(f"The read paths returned different frames from the {codec} store: {digests}")

    frames = args.frames * args.cameras
    rows: list[Row] = []
    print(f"full resolution {catalogue.NVS_WIDTH}x{catalogue.NVS_HEIGHT}, {args.cameras} cameras x {args.frames} frames "
          f"(images + alpha = {n_videos} videos), {args.workers} workers")
    print(f"(a) random single-frame read: cold = first read of each camera but the first in {args.runs} fresh "
          f"process(es) (first read = the process's very first, with its one-time imports), "
          f"warm = median of {args.reads} reads per process; OpenCV cold {opencv['cold_ms']:.1f} ms, "
          f"warm {opencv['warm_ms']:.1f} ms (peak RSS {opencv['peak_rss_mib']:.0f} MiB)")
    for codec, by_path in reads.items():
        for path, result in by_path.items():
            limit = by_path[LIMIT_OF[path]]
            print(f"    {codec:<5} {path:<20} open {result['open_ms']:7.1f} ms, first read {result['first_ms']:7.2f} ms "
                  f"| cold {result['cold_ms']:7.2f} ms "
                  f"({result['cold_ms'] / limit['cold_ms']:4.2f}x raw, {opencv['cold_ms'] / result['cold_ms']:6.1f}x OpenCV) "
                  f"| warm {result['warm_ms']:6.2f} ms ({result['warm_ms'] / limit['warm_ms']:4.2f}x raw, "
                  f"{opencv['warm_ms'] / result['warm_ms']:6.1f}x OpenCV) | peak RSS {result['peak_rss_mib']:.0f} MiB")
        rows += _read_rows(codec, by_path, opencv)

    print(f"(f) {FRESH_READS} random store.frame reads right after sequence() in each of {args.runs} fresh processes "
          f"vs {FRESH_READS} warm ones (after a read from every shard)")
    for codec, result in fresh.items():
        ratio = result["fresh_ms"] / result["warm_ms"]
        print(f"    {codec:<5} sequence() {result['open_ms']:.1f} ms; fresh median {result['fresh_ms']:.2f} ms "
              f"(mean {result['fresh_mean_ms']:.2f}, max {result['fresh_max_ms']:.2f}, the process's first "
              f"{result['first_ms']:.2f}) vs warm {result['warm_ms']:.2f} ms -> {ratio:.2f}x warm")
        rows.append(Row("convert", f"(f) {FRESH_READS} random store.frame reads of a fresh process (median; mean "
                        f"{result['fresh_mean_ms']:.2f}, max {result['fresh_max_ms']:.2f} ms), {codec}",
                        f"{result['fresh_ms']:.2f} ms", f"{result['warm_ms']:.2f} ms ({FRESH_READS} warm reads)",
                        result["warm_ms"] / result["fresh_ms"], f"fresh = {ratio:.2f}x warm (target <= {FRESH_TARGET:g}x)",
                        f"{result['peak_rss_mib']:.0f} MiB"))

    print(f"(b) stream one camera: dask over the store {_fps(stream_store):.1f} frames/s, "
          f"PyAV decode {_fps(stream_pyav):.1f} frames/s -> {stream_pyav['seconds'] / stream_store['seconds']:.2f}x "
          f"(peak RSS {stream_store['peak_rss_mib']:.0f} / {stream_pyav['peak_rss_mib']:.0f} MiB)")
    rows.append(Row("convert", "(b) stream one camera (per-frame mean), dask over the store, zstd",
                    f"{_fps(stream_store):.1f} frames/s", f"{_fps(stream_pyav):.1f} frames/s (PyAV decode of the mp4)",
                    stream_pyav["seconds"] / stream_store["seconds"], "", peak_pair(stream_store, stream_pyav)))

    print(f"(c) decode only, {args.workers} workers: {_fps(decode):.1f} frames/s (peak RSS {decode['peak_rss_mib']:.0f} MiB)")
    for codec, result in converts.items():
        ratio = decode["seconds"] / result["seconds"]
        print(f"    convert {codec:<16} {decode['frames'] / result['seconds']:6.1f} frames/s = {ratio:.2f} of decode-only "
              f"(peak RSS {result['peak_rss_mib']:.0f} MiB)")
        rows.append(Row("convert", f"(c) convert, {args.workers} workers, {codec}",
                        f"{decode['frames'] / result['seconds']:.1f} frames/s",
                        f"{_fps(decode):.1f} frames/s (decode only, same videos, same workers)", ratio,
                        f"target >= {LZ4_CONVERT_TARGET:g} of decode-only" if codec == "lz4" else "",
                        peak_pair(result, decode)))

    print(f"(d) single-threaded on one core: decode only {_fps(decode_single):.1f} frames/s "
          f"(CPU/wall {_cpu_per_wall(decode_single):.2f}: below 1 when other work shares the core)")
    for codec, (compress, converted) in single.items():
        overhead = converted["seconds"] / compress["seconds"] - 1
        cpu_overhead = converted["cpu_seconds"] / compress["cpu_seconds"] - 1
        print(f"    {codec:<5} decode + compress {_fps(compress):6.1f} frames/s ({compress['bytes'] / 2**20:.0f} MiB, "
              f"CPU/wall {_cpu_per_wall(compress):.2f}); convert {compress['frames'] / converted['seconds']:6.1f} frames/s "
              f"({converted['bytes'] / 2**20:.0f} MiB stored, CPU/wall {_cpu_per_wall(converted):.2f}, zarr pool threads "
              f"{converted['zarr_pool_threads']}) -> zarr's write overhead {overhead:+.1%} wall, {cpu_overhead:+.1%} CPU time")
        rows.append(Row("convert", f"(d) decode + compress, 1 core, {codec} (the store's compressor per frame)",
                        f"{_fps(compress):.1f} frames/s", f"{_fps(decode_single):.1f} frames/s (PyAV decode only, 1 thread)",
                        decode_single["seconds"] / compress["seconds"], "", peak_pair(compress, decode_single)))
        rows.append(Row("convert", f"(d) convert, 1 core, workers=1, zarr pool 1 thread, {codec}",
                        f"{compress['frames'] / converted['seconds']:.1f} frames/s",
                        f"{_fps(compress):.1f} frames/s (decode + compress)", compress["seconds"] / converted["seconds"],
                        f"zarr's write overhead {overhead:+.1%} ({cpu_overhead:+.1%} in CPU time; "
                        f"target <= +{WRITE_OVERHEAD_TARGET:.0%})",
                        peak_pair(converted, compress)))

    raw_kib = catalogue.NVS_WIDTH * catalogue.NVS_HEIGHT * 3 / 1024
    mp4_kib = mp4_bytes / frames / 1024
    print(f"(e) bytes per RGB frame: mp4 {mp4_kib:.0f} KiB; raw {raw_kib:.0f} KiB")
    for codec, result in converts.items():
        kib = result["images_bytes"] / frames / 1024
        psnr = f", PSNR {result['psnr_db']:.1f} dB" if "psnr_db" in result else ""
        print(f"    {codec:<16} {kib:8.0f} KiB ({kib / mp4_kib:.1f}x the mp4){psnr}")
        rows.append(Row("convert", f"(e) bytes per RGB frame, {codec}{psnr or ' (exact)'}", f"{kib:.0f} KiB",
                        f"{mp4_kib:.0f} KiB (the mp4)", mp4_kib / kib, f"raw frame {raw_kib:.0f} KiB",
                        f"{result['peak_rss_mib']:.0f} MiB (convert)"))
    append_rows(args.rows, rows)


if __name__ == "__main__":
    main()
