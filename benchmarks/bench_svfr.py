"""SVFR export: 391 posed + 391 neutral meshes, against writing the same PLY files with trimesh in a loop.

    python -m benchmarks.bench_svfr [--repeats 3]

The meshes are FLAME-sized (5023 vertices, the stand-in model's 9976 triangles), one per image key and task,
held in memory as a mapping. Two fresh processes per repeat:

- ``trimesh``: what the official toolkit's writer does, ``trimesh.Trimesh(v, f).export(f, 'ply')`` into each
  zip entry in a loop (no validation);
- ``export``: ``export_svfr_submission`` on the mapping, end to end (check, write, validate the zip, move).

Printed: the best wall-clock seconds of each, their ratio, and each process's peak resident memory
(VmHWM, the largest over the repeats). Needs trimesh (the test extra).
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


def meshes(folder: Path) -> dict:
    """``{task: {key: (vertices, faces)}}`` for every key, vertices differing per mesh."""
    from nersemble_zarr.flame import load_flame_assets, write_standin_flame
    from nersemble_zarr.submission.svfr_predictions import all_svfr_keys

    write_standin_flame(folder)
    assets = load_flame_assets(folder)
    rng = np.random.default_rng(0)
    return {
        task: {
            (p, k.sequence, k.timestep, k.serial): (
                (assets.v_template + rng.normal(scale=1e-3, size=assets.v_template.shape)).astype(np.float32),
                assets.faces.astype(np.int32),
            )
            for p, k in all_svfr_keys()
        }
        for task in ("posed", "neutral")
    }


def run_one(mode: str, folder: Path) -> dict:
    """Time one mode in this process; returns seconds and peak memory."""
    import zipfile

    predictions = meshes(folder / "flame")
    output = folder / f"{mode}.zip"
    started = time.perf_counter()
    if mode == "export":
        from nersemble_zarr.submission import export_svfr_submission

        export_svfr_submission(predictions, output)
    else:
        import trimesh

        from nersemble_zarr import catalogue

        with zipfile.ZipFile(output, "w") as archive:
            for task, by_key in predictions.items():
                for (p, s, t, c), (vertices, faces) in by_key.items():
                    entry = catalogue.svfr_mesh_entry(p, catalogue.ImageKey(s, t, c), task)
                    with archive.open(entry, "w") as handle:
                        trimesh.Trimesh(vertices, faces).export(handle, "ply")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_mib": peak_rss_mib(),
            "zip_mib": output.stat().st_size / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parse_benchmark_args(parser, {"repeats": 1})
    if args.mode:
        print(json.dumps(run_one(args.mode, Path(args.folder))))
        return
    results: dict[str, list[dict]] = {"trimesh": [], "export": []}
    for _ in range(args.repeats):
        for mode in results:
            with tempfile.TemporaryDirectory() as folder:
                out = subprocess.run([sys.executable, "-m", "benchmarks.bench_svfr", "--mode", mode, "--folder", folder],
                                     check=True, capture_output=True, text=True).stdout
                results[mode].append(json.loads(out.strip().splitlines()[-1]))
    best = {mode: min(r["seconds"] for r in runs) for mode, runs in results.items()}
    peak = {mode: max(r["peak_mib"] for r in runs) for mode, runs in results.items()}
    print("782 FLAME-sized meshes (391 posed + 391 neutral)")
    for mode in results:
        print(f"  {mode:<8} {best[mode]:6.2f} s   peak {peak[mode]:7.0f} MiB   zip {results[mode][0]['zip_mib']:.0f} MiB")
    print(f"  export / trimesh loop: {best['export'] / best['trimesh']:.2f}x the time (export also validates)")
    append_rows(args.rows, [Row(
        "svfr", f"export-svfr-submission of 782 FLAME-sized meshes (check, write, validate), best of {args.repeats}",
        f"{best['export']:.2f} s", f"{best['trimesh']:.2f} s (trimesh PLY export loop, no validation)",
        best["trimesh"] / best["export"], "", f"{peak['export']:.0f} / {peak['trimesh']:.0f} MiB")])


if __name__ == "__main__":
    main()
