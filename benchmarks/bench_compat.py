"""Peak memory of nersemble_zarr.compat's submission writer vs the official one, against video length.

    python -m benchmarks.bench_compat [--frames 50,100,200] [--benchmark mono_flame_avatar|nvs]

For each length N, two fresh processes each write one video of N procedurally drawn frames:

- ``official``: ``nersemble_benchmark``'s writer, which takes a list: the frames are rendered into a
  list first, then ``add_video`` (mediapy, which needs an ffmpeg binary: imageio-ffmpeg's is used);
- ``compat``: ``nersemble_zarr.compat``'s writer fed a generator, frames rendered as they are encoded.

Printed per N: each process's peak resident memory (VmHWM) and wall-clock seconds. Needs the
``test`` extra (nersemble-benchmark) and imageio-ffmpeg for the official side.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.options import parse_benchmark_args
from benchmarks.phases import peak_rss_mib
from benchmarks.table import Row, append_rows

VIDEO = {"nvs": (388, "GLASSES", "222200046", 1100, 1604), "mono_flame_avatar": (393, "FREE", "222200037", 512, 512)}


def frames(n: int, width: int, height: int):
    """A generator of ``n`` moving-gradient RGB frames."""
    y, x = np.mgrid[0:height, 0:width]
    for t in range(n):
        yield np.stack([(x + 3 * t) % 256, (y + 2 * t) % 256, (x + y + t) % 256], axis=-1).astype(np.uint8)


def run_phase(writer: str, benchmark: str, n: int, folder: Path) -> dict:
    """Write one video in this process and return its peak RSS and time."""
    participant, sequence, serial, width, height = VIDEO[benchmark]
    zip_path = folder / f"{writer}.zip"
    started = time.perf_counter()
    if writer == "official":
        import imageio_ffmpeg
        import mediapy
        from nersemble_benchmark.data import submission_data

        mediapy.set_ffmpeg(imageio_ffmpeg.get_ffmpeg_exe())
        cls = submission_data.NVSSubmissionDataWriter if benchmark == "nvs" else submission_data.MonoFlameAvatarSubmissionDataWriter
        with cls(str(zip_path)) as out:
            out.add_video(participant, sequence, serial, list(frames(n, width, height)))  # it needs a list
    else:
        from nersemble_zarr import compat

        cls = compat.NVSSubmissionDataWriter if benchmark == "nvs" else compat.MonoFlameAvatarSubmissionDataWriter
        with cls(zip_path) as out:
            out.add_video(participant, sequence, serial, frames(n, width, height))
    return {"seconds": time.perf_counter() - started,
            "peak_rss_mib": peak_rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", default="50,100,200")
    parser.add_argument("--benchmark", default="mono_flame_avatar", choices=sorted(VIDEO))
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parse_benchmark_args(parser, {"frames": "50"})
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.benchmark, args.n, Path(args.folder))))
        return
    print(f"{args.benchmark}: one video, peak RSS per process (MiB) and seconds")
    rows = []
    for n in (int(v) for v in args.frames.split(",")):
        row, results = [], {}
        for writer in ("official", "compat"):
            with tempfile.TemporaryDirectory() as folder:
                command = [sys.executable, "-m", "benchmarks.bench_compat", "--phase", writer, "--n", str(n),
                           "--benchmark", args.benchmark, "--folder", folder]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    row.append(f"{writer}: failed ({done.stderr.strip().splitlines()[-1] if done.stderr else '?'})")
                    continue
                result = results[writer] = json.loads(done.stdout.strip().splitlines()[-1])
                row.append(f"{writer} {result['peak_rss_mib']:7.0f} MiB {result['seconds']:6.1f} s")
        print(f"N={n:5d}  " + "   ".join(row))
        if len(results) == 2:
            official, compat = results["official"], results["compat"]
            rows.append(Row("compat", f"peak memory of a submission writer, one {args.benchmark} video of {n} frames",
                            f"{compat['peak_rss_mib']:.0f} MiB (compat writer, a generator)",
                            f"{official['peak_rss_mib']:.0f} MiB (official writer, a list)",
                            official["peak_rss_mib"] / compat["peak_rss_mib"], "",
                            f"{compat['peak_rss_mib']:.0f} / {official['peak_rss_mib']:.0f} MiB"))
    append_rows(args.rows, rows)


if __name__ == "__main__":
    main()
