"""Fetch throughput against the loopback server, vs a plain single-stream requests download of the same bytes.

    python -m benchmarks.bench_fetch --mib 256 --repeats 5 --throttled-mib 48 --throttle-mib-s 8

A server process serves an NVS-layout tree (participant 388: 26 mp4-shaped videos of random bytes plus metadata and
calibration). Each run is its own client process, so its peak resident memory is its own:
  baseline   one requests.Session, the files one after another, iter_content(1 MiB) into the final file;
  fetch -j1  nersemble_zarr.fetch with one worker (HEAD per file, .part, size checks, os.replace);
  fetch -j4  the same with four workers.
Scenario "loopback" is unthrottled (CPU-bound on this machine); scenario "throttled" limits every
connection to --throttle-mib-s, like a remote server that caps each stream. Best of --repeats runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

from benchmarks.options import parse_benchmark_args
from benchmarks.phases import peak_rss_mib
from benchmarks.table import Row, append_rows
from nersemble_zarr import catalogue
from nersemble_zarr.synthetic.filler import mp4_around

BENCHMARK, PARTICIPANT, SEQUENCE = "nvs", 388, "GLASSES"
VARIANTS = {"baseline": None, "fetch -j1": 1, "fetch -j4": 4}
QUICK = {"mib": 64, "throttled_mib": 16, "repeats": 2}


def relative_paths() -> list[str]:
    """metadata, calibration and the 26 videos of participant 388, as fetch plans them."""
    videos = [catalogue.video_path(PARTICIPANT, SEQUENCE, serial, kind)
              for kind in ("images", "alpha_maps") for serial in catalogue.NVS_TRAIN_SERIALS]
    return [catalogue.METADATA_FILE, catalogue.calibration_path(PARTICIPANT), *videos]


def make_tree(root: Path, total_mib: int) -> int:
    """Write the served tree; returns its size in bytes."""
    paths = relative_paths()
    per_video = (total_mib << 20) // (len(paths) - 2)
    metadata = {"sequences": {str(PARTICIPANT): {"sequence_name": SEQUENCE, "timesteps": [0]}}}
    total = 0
    for relative in paths:
        target = root / BENCHMARK / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative == catalogue.METADATA_FILE:
            target.write_text(json.dumps(metadata))
        elif relative.endswith(".json"):
            target.write_text(json.dumps({"world_2_cam": {}, "intrinsics": {}}))
        else:
            target.write_bytes(mp4_around(os.urandom(per_video)))  # fetch checks each mp4's boxes
        total += target.stat().st_size
    return total


# ---------------------------------------------------------------- child processes
def serve_forever(root: Path, throttle_mib_s: float | None) -> None:
    """Serve ``root``, print the URL, and run until stdin closes."""
    from nersemble_zarr.synthetic.server import Faults, serve

    faults = Faults(bytes_per_second=throttle_mib_s * (1 << 20) if throttle_mib_s else None)
    with serve(root, faults) as server:
        print(server.url, flush=True)
        sys.stdin.read()


def run_client(variant: str, out: Path) -> dict:
    """Download every file once with ``variant``; returns seconds, bytes and peak RSS of this process."""
    url = os.environ["NERSEMBLE_BENCHMARK_URL"]
    workers = VARIANTS[variant]
    start = time.perf_counter()
    if workers is None:
        import requests

        received = 0
        with requests.Session() as session:
            for relative in relative_paths():
                target = out / BENCHMARK / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with session.get(f"{url}/{BENCHMARK}/{relative}", stream=True, timeout=60) as response:
                    response.raise_for_status()
                    with open(target, "wb") as handle:
                        for chunk in response.iter_content(1 << 20):
                            handle.write(chunk)
                            received += len(chunk)
    else:
        from nersemble_zarr.fetch import fetch

        summary = fetch(out, BENCHMARK, participants=[PARTICIPANT], assets=["calibration", "images", "alpha_maps"],
                        workers=workers)
        received = summary.bytes_downloaded
    seconds = time.perf_counter() - start
    peak_mib = peak_rss_mib()
    return {"seconds": seconds, "bytes": received, "peak_mib": peak_mib}


# ---------------------------------------------------------------- driver
def best_runs(served: Path, scratch: Path, throttle_mib_s: float | None, repeats: int, *, client_module: str,
              env_var: str, variants: Iterable[str], check: Callable[[str, Path, dict], None]) -> dict:
    """Best run of each variant against one server process serving ``served`` (its URL in ``env_var``): each run is
    ``python -m {client_module} --client VARIANT OUT`` in a fresh process, and counts only after ``check(variant,
    OUT, result)`` found its download complete and exact."""
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_fetch", "--serve", str(served), str(throttle_mib_s or 0)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        env = dict(os.environ, **{env_var: server.stdout.readline().strip()})
        best: dict[str, dict] = {}
        for _ in range(repeats):
            for variant in variants:
                out = scratch / variant.replace(" ", "")
                done = subprocess.run(
                    [sys.executable, "-m", client_module, "--client", variant, str(out)],
                    env=env, capture_output=True, text=True, check=True,
                )
                result = json.loads(done.stdout.strip().splitlines()[-1])
                check(variant, out, result)
                shutil.rmtree(out)
                if variant not in best or result["seconds"] < best[variant]["seconds"]:
                    best[variant] = result
        return best
    finally:
        server.stdin.close()
        server.wait(timeout=30)


def measure(served: Path, scratch: Path, throttle_mib_s: float | None, repeats: int, expected: int) -> dict:
    """Best run of each variant: every file byte-identical to the served one, ``expected`` bytes received."""

    def check(variant: str, out: Path, result: dict) -> None:
        for relative in relative_paths():
            got = (out / BENCHMARK / relative).read_bytes()
            assert got == (served / BENCHMARK / relative).read_bytes(), (variant, relative)
        assert result["bytes"] == expected, (variant, result["bytes"], expected)

    return best_runs(served, scratch, throttle_mib_s, repeats, client_module="benchmarks.bench_fetch",
                     env_var="NERSEMBLE_BENCHMARK_URL", variants=VARIANTS, check=check)


def report(title: str, best: dict, total: int, throttle_mib_s: float | None = None) -> list[Row]:
    """Print the scenario's results; its rows for the benchmark table (each fetch variant vs the baseline)."""
    base = best["baseline"]["seconds"]
    print(f"\n{title}: {total / (1 << 20):.0f} MiB in {len(relative_paths())} files")
    print(f"{'variant':<11} {'seconds':>8} {'MiB/s':>8} {'vs baseline':>12} {'peak RSS MiB':>13}")
    rate = lambda result: total / (1 << 20) / result["seconds"]
    for variant, result in best.items():
        print(f"{variant:<11} {result['seconds']:>8.2f} {rate(result):>8.1f} {base / result['seconds']:>11.2f}x "
              f"{result['peak_mib']:>13.0f}")
    rows = []
    for variant, workers in VARIANTS.items():
        if workers is None:
            continue
        limit = (f"{workers * throttle_mib_s:g} MiB/s ({workers} connection(s) x {throttle_mib_s:g} MiB/s cap)"
                 if throttle_mib_s else "")
        rows.append(Row("fetch", f"{variant}, {title}, {total / (1 << 20):.0f} MiB in {len(relative_paths())} files",
                        f"{rate(best[variant]):.1f} MiB/s", f"{rate(best['baseline']):.1f} MiB/s (one requests stream)",
                        base / best[variant]["seconds"], limit,
                        f"{best[variant]['peak_mib']:.0f} / {best['baseline']['peak_mib']:.0f} MiB"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256, help="size of the unthrottled scenario's files in all")
    parser.add_argument("--throttled-mib", type=int, default=48, help="size for the throttled scenario (0: skip)")
    parser.add_argument("--throttle-mib-s", type=float, default=8.0, help="per-connection limit, MiB/s")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--serve", nargs=2, metavar=("ROOT", "MIB_S"), help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=2, metavar=("VARIANT", "OUT"), help=argparse.SUPPRESS)
    args = parse_benchmark_args(parser, QUICK)
    if args.serve:
        return serve_forever(Path(args.serve[0]), float(args.serve[1]) or None)
    if args.client:
        return print(json.dumps(run_client(args.client[0], Path(args.client[1]))))

    with tempfile.TemporaryDirectory(prefix="bench_fetch_") as scratch:
        scratch = Path(scratch)
        total = make_tree(scratch / "served", args.mib)
        rows = report("loopback", measure(scratch / "served", scratch, None, args.repeats, total), total)
        if args.throttled_mib:
            total = make_tree(scratch / "throttled", args.throttled_mib)
            best = measure(scratch / "throttled", scratch, args.throttle_mib_s, 1, total)
            rows += report(f"throttled to {args.throttle_mib_s:g} MiB/s per connection", best, total, args.throttle_mib_s)
    append_rows(args.rows, rows)


if __name__ == "__main__":
    main()
