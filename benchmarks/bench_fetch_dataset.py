"""Fetching a v2 dataset selection from the loopback server: ours vs one requests stream vs the official kit's loop.

    python -m benchmarks.bench_fetch_dataset --mib 256 --repeats 3 --throttled-mib 48 --throttle-mib-s 8

A server process serves a dataset tree in the official layout: participant 17's two CSVs, calibration, colour
calibration, 16 background JPEGs and two sequences filmed by the 16 cameras (32 mp4-shaped videos of random bytes;
at --mib 256 each is 8 MiB, about the real dataset's 8.7 MB per video). Each run is its own client process, so its
peak resident memory is its own; each fetches every file of the tree into an empty folder:
  requests stream  one requests.Session, the files one after another, iter_content(1 MiB) into the final file;
  kit -jN          the official nersemble-data 0.0.6 download loop: its ``download_file`` (a HEAD if the file
                   exists, then ``urllib.request.urlretrieve``) per file, called as its ``manage_data.py download``
                   calls it: one after another for --n_workers 1 (its default), else ``apply_async`` on a
                   ``ThreadPool(N)``; its prints (which show the URL) are swallowed;
  fetch -jN        ``nersemble_zarr.fetch.fetch(ROOT, "dataset", participants=[17])`` with N workers (CSVs first,
                   a HEAD per file, .part files, body checks, os.replace).
Every run's files are compared with the served ones byte for byte. Scenario "loopback" is unthrottled (CPU-bound
on this machine); scenario "throttled" limits every connection to --throttle-mib-s, like a remote server that caps
each stream. Best of --repeats runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from multiprocessing.pool import ThreadPool
from pathlib import Path

from benchmarks.bench_fetch import best_runs
from benchmarks.options import parse_benchmark_args
from benchmarks.phases import peak_rss_mib
from benchmarks.table import Row, append_rows
from nersemble_zarr import catalogue
from nersemble_zarr.inputs.dataset_index import PARTICIPANTS_CSV, SEQUENCES_CSV
from nersemble_zarr.sources.dataset import background_path, calibration_path, colour_calibration_path, video_path
from nersemble_zarr.synthetic.filler import mp4_around

PARTICIPANT, SEQUENCES = 17, ("EXP-1-head", "EMO-1-shout+laugh")
VARIANTS = {"requests stream": None, "kit -j1": 1, "kit -j4": 4, "fetch -j1": 1, "fetch -j4": 4}
COMPARED = (("fetch -j4", "requests stream", "one requests stream"),
            ("fetch -j4", "kit -j4", "kit urlretrieve, 4 threads"),
            ("fetch -j1", "kit -j1", "kit urlretrieve, 1 thread (its default)"))
QUICK = {"mib": 64, "throttled_mib": 16, "repeats": 2}


def relative_paths() -> list[str]:
    """Every file of the served tree, in the order the kit lists them (CSVs first here, as fetch reads them)."""
    paths = [PARTICIPANTS_CSV, SEQUENCES_CSV, calibration_path(PARTICIPANT), colour_calibration_path(PARTICIPANT)]
    paths += [video_path(PARTICIPANT, s, serial) for s in SEQUENCES for serial in catalogue.SERIALS]
    return paths + [background_path(PARTICIPANT, serial) for serial in catalogue.SERIALS]


def make_tree(root: Path, total_mib: int) -> int:
    """Write the served dataset tree under ``root``; returns its size in bytes."""
    import imagecodecs
    import numpy as np

    videos = [p for p in relative_paths() if p.endswith(".mp4")]
    per_video = (total_mib << 20) // len(videos)
    noise = np.random.default_rng(0)
    columns = ",".join(("ID", "wears_glasses", "BACKGROUND", *SEQUENCES))
    contents = {
        PARTICIPANTS_CSV: f"ID\n{PARTICIPANT}\n".encode(),
        SEQUENCES_CSV: f"{columns}\n{PARTICIPANT},,x,x,m\n".encode(),
        calibration_path(PARTICIPANT): json.dumps({"world_2_cam": {s: np.eye(4).tolist() for s in catalogue.SERIALS},
                                                   "intrinsics": np.eye(3).tolist()}).encode(),
        colour_calibration_path(PARTICIPANT): json.dumps({s: np.eye(3).tolist() for s in catalogue.SERIALS}).encode(),
    }
    total = 0
    for relative in relative_paths():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative in contents:
            target.write_bytes(contents[relative])
        elif relative.endswith(".jpg"):
            target.write_bytes(imagecodecs.jpeg8_encode(noise.integers(0, 256, (200, 200, 3), dtype=np.uint8)))
        else:
            target.write_bytes(mp4_around(os.urandom(per_video)))  # fetch checks each mp4's boxes
        total += target.stat().st_size
    return total


# ---------------------------------------------------------------- child processes
def run_client(variant: str, root: Path) -> dict:
    """Download every file once with ``variant`` into ``root/dataset``; returns seconds (its imports excluded: each
    variant imports only what it uses, before the clock starts), bytes and peak RSS of this process."""
    if variant == "requests stream":
        import requests
    elif variant.startswith("kit"):
        from nersemble_data.util.download import download_file
    else:
        from nersemble_zarr.fetch import fetch
    url = os.environ["NERSEMBLE_DATA_URL"]
    out = root / "dataset"
    workers = VARIANTS[variant]
    start = time.perf_counter()
    if variant == "requests stream":
        with requests.Session() as session:
            for relative in relative_paths():
                target = out / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with session.get(f"{url}/{relative}", stream=True, timeout=60) as response:
                    response.raise_for_status()
                    with open(target, "wb") as handle:
                        for chunk in response.iter_content(1 << 20):
                            handle.write(chunk)
    elif variant.startswith("kit"):
        kit_download(download_file, url, out, workers)
    else:
        fetch(root, "dataset", url=url, participants=[PARTICIPANT], workers=workers)
    seconds = time.perf_counter() - start
    received = sum((out / relative).stat().st_size for relative in relative_paths())
    return {"seconds": seconds, "bytes": received, "peak_mib": peak_rss_mib()}


def kit_download(download_file, url: str, out: Path, n_workers: int) -> None:
    """The official kit's download loop (``manage_data.py download``'s last lines) over the tree's paths."""
    with contextlib.redirect_stdout(io.StringIO()):  # the kit prints every URL
        if n_workers == 1:
            for relative_url in relative_paths():
                download_file(f"{url}/{relative_url}", f"{out}/{relative_url}")
        else:
            pool = ThreadPool(processes=n_workers)
            futures = [pool.apply_async(download_file, (f"{url}/{relative_url}", f"{out}/{relative_url}"))
                       for relative_url in relative_paths()]
            for future in futures:
                future.get()
            pool.close()


# ---------------------------------------------------------------- driver
def measure(served: Path, scratch: Path, throttle_mib_s: float | None, repeats: int, expected: int) -> dict:
    """Best run of each variant: every file byte-identical to the served one, ``expected`` bytes received."""

    def check(variant: str, out: Path, result: dict) -> None:
        for relative in relative_paths():
            assert (out / "dataset" / relative).read_bytes() == (served / relative).read_bytes(), (variant, relative)
        assert result["bytes"] == expected, (variant, result["bytes"], expected)

    return best_runs(served, scratch, throttle_mib_s, repeats, client_module="benchmarks.bench_fetch_dataset",
                     env_var="NERSEMBLE_DATA_URL", variants=VARIANTS, check=check)


def report(title: str, best: dict, total: int, throttle_mib_s: float | None = None) -> list[Row]:
    """Print the scenario's results; its rows for the benchmark table (ours against each baseline)."""
    rate = lambda result: total / (1 << 20) / result["seconds"]
    print(f"\n{title}: {total / (1 << 20):.0f} MiB in {len(relative_paths())} files")
    print(f"{'variant':<16} {'seconds':>8} {'MiB/s':>8} {'peak RSS MiB':>13}")
    for variant, result in best.items():
        print(f"{variant:<16} {result['seconds']:>8.2f} {rate(result):>8.1f} {result['peak_mib']:>13.0f}")
    rows = []
    for ours, baseline, described in COMPARED:
        ratio = best[baseline]["seconds"] / best[ours]["seconds"]
        print(f"{ours} vs {baseline}: {ratio:.2f}x")
        workers = VARIANTS[ours]
        limit = (f"{workers * throttle_mib_s:g} MiB/s ({workers} connection(s) x {throttle_mib_s:g} MiB/s cap)"
                 if throttle_mib_s else "")
        what = f"{ours}, {title}, {total / (1 << 20):.0f} MiB in {len(relative_paths())} files (one participant)"
        rows.append(Row("fetch dataset", what, f"{rate(best[ours]):.1f} MiB/s",
                        f"{rate(best[baseline]):.1f} MiB/s ({described})", ratio, limit,
                        f"{best[ours]['peak_mib']:.0f} / {best[baseline]['peak_mib']:.0f} MiB"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256, help="size of the unthrottled scenario's videos in all")
    parser.add_argument("--throttled-mib", type=int, default=48, help="size for the throttled scenario (0: skip)")
    parser.add_argument("--throttle-mib-s", type=float, default=8.0, help="per-connection limit, MiB/s")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--client", nargs=2, metavar=("VARIANT", "OUT"), help=argparse.SUPPRESS)
    args = parse_benchmark_args(parser, QUICK)
    if args.client:
        return print(json.dumps(run_client(args.client[0], Path(args.client[1]))))

    with tempfile.TemporaryDirectory(prefix="bench_fetch_dataset_") as scratch:
        scratch = Path(scratch)
        total = make_tree(scratch / "served", args.mib)
        rows = report("loopback", measure(scratch / "served", scratch, None, args.repeats, total), total)
        if args.throttled_mib:
            total = make_tree(scratch / "throttled", args.throttled_mib)
            best = measure(scratch / "throttled", scratch, args.throttle_mib_s, 1, total)
            title = f"throttled to {args.throttle_mib_s:g} MiB/s per connection"
            rows += report(title, best, total, args.throttle_mib_s)
    append_rows(args.rows, rows)


if __name__ == "__main__":
    main()
