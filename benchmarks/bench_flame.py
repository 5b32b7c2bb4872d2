"""FLAME meshes of a whole sequence: batched evaluation vs the official one-timestep-at-a-time loop.

    python -m benchmarks.bench_flame [--timesteps 1000] [--device cpu|cuda|auto] [--batch-size N]
                                     [--threads N] [--flame-dir DIR] [--quick] [--rows FILE]

Random tracking-like parameters for one sequence of ``--timesteps`` timesteps; two fresh processes:

- ``reference``: the official ``FlameProvider`` way: the ``flame_model`` package's FLAME (batch size 1)
  forward for one timestep at a time (global rotation 0), then the model-to-world transform
  (scale * R(t) @ v + translation[t], R from scipy's intrinsic XYZ Euler angles), on CPU;
- ``batched``: ``FlameModel.evaluate`` (shape blend once, batches of timesteps) on ``--device``.

Both time all timesteps after a short warm-up (model loading is not timed), ``--repeats`` times, and
keep the fastest run (the machine may be shared; the fastest run is the least disturbed). Printed:
meshes/s of each, their ratio, the largest vertex difference between them, each process's peak resident memory
(VmHWM), and on CUDA the peak GPU memory. The arithmetic limit: the floating-point operations one mesh
needs on the batched path (:func:`flops_per_mesh`) at the FLOP rate of a large float32 matrix product measured
in the batched process with the same threads. Without ``--flame-dir`` the stand-in model (FLAME 2023's
array sizes, random values, NOT FLAME) is written to a temporary folder; ``flame_model`` needs a pickle
without chumpy objects, so a real flame2023.pkl only works for the reference where chumpy imports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.phases import peak_rss_mib
from benchmarks.table import Row, append_rows, peak_pair

WARM_UP_TIMESTEPS = 8
GEMM_SIZE = 2048


def flops_per_mesh(vertices: int = 5023, joints: int = 5, expression: int = 100) -> int:
    """Floating-point operations of one mesh on the batched path (multiply-adds count 2).

    The blend GEMM (template + expression + 36 pose correctives per coordinate), the expression part of the
    joint regression, blending each vertex's 3x4 transform from joints + world translation, applying it.
    """
    pose_correctives = 9 * (joints - 1)
    blend = 2 * 3 * vertices * (1 + expression + pose_correctives)
    joint_regression = 2 * expression * 3 * joints
    transform_blend = 2 * vertices * (joints + 1) * 12
    transform_apply = 2 * vertices * 9
    return blend + joint_regression + transform_blend + transform_apply


def gemm_gflops(device: str = "cpu", repeats: int = 5) -> float:
    """The float32 FLOP rate of a large square matrix product on ``device`` (best of ``repeats``), GFLOP/s."""
    import torch

    a = torch.randn(GEMM_SIZE, GEMM_SIZE, device=device)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - start)
    return 2 * GEMM_SIZE**3 / best / 1e9


def random_parameters(n_timesteps: int, seed: int = 0):
    """Tracking-like parameters: random shape/expression, poses of a few tenths of a radian."""
    from nersemble_zarr.flame.params import FlameParameters

    rng = np.random.default_rng(seed)
    return FlameParameters(
        shape=rng.normal(size=300), scale=1.1, expression=rng.normal(size=(n_timesteps, 100)),
        rotation=rng.normal(size=(n_timesteps, 3)) * 0.3, translation=rng.normal(size=(n_timesteps, 3)) * 0.1,
        jaw=rng.normal(size=(n_timesteps, 3)) * 0.2, neck=rng.normal(size=(n_timesteps, 3)) * 0.2,
        eyes=rng.normal(size=(n_timesteps, 6)) * 0.2,
    )


def fastest(run, repeats: int) -> tuple[float, np.ndarray]:
    """The shortest time of ``repeats`` calls of ``run`` (returning its result), and that result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def run_reference(flame_dir: Path, n_timesteps: int, repeats: int) -> tuple[float, np.ndarray, dict]:
    """The official loop: flame_model forward per timestep, then the model-to-world transform."""
    import torch
    from flame_model import FLAME, FlameConfig
    from scipy.spatial.transform import Rotation

    flame = FLAME(FlameConfig(flame_folder=str(flame_dir), shape_params=300, expression_params=100, batch_size=1))
    params = random_parameters(n_timesteps)
    shape, expression, jaw, neck, eyes = (
        torch.tensor(array, dtype=torch.float32)
        for array in (params.shape[None], params.expression, params.jaw, params.neck, params.eyes))
    pose = torch.cat([torch.zeros_like(jaw), jaw], dim=1)

    def mesh(t: int) -> np.ndarray:
        vertices, _ = flame.forward(shape_params=shape, expression_params=expression[[t]], pose_params=pose[[t]],
                                    neck_pose=neck[[t]], eye_pose=eyes[[t]])
        model_to_world = np.eye(4)
        model_to_world[:3, :3] = params.scale * Rotation.from_euler("XYZ", params.rotation[t]).as_matrix()
        model_to_world[:3, 3] = params.translation[t]
        transform = torch.tensor(model_to_world, dtype=torch.float32)
        homogeneous = torch.cat([vertices, torch.ones_like(vertices[..., :1])], dim=-1)
        return torch.bmm(homogeneous, transform.T[None])[0, :, :3].numpy()

    with torch.no_grad():
        for t in range(WARM_UP_TIMESTEPS):
            mesh(t)
        seconds, vertices = fastest(lambda: np.stack([mesh(t) for t in range(n_timesteps)]), repeats)
    return seconds, vertices, {}


def run_batched(
    flame_dir: Path, n_timesteps: int, device: str, batch_size: int | None, repeats: int
) -> tuple[float, np.ndarray, dict]:
    """The batched path on ``device``."""
    import torch

    from nersemble_zarr.flame.batching import default_batch_size
    from nersemble_zarr.flame.lbs import FlameModel

    model = FlameModel.load(flame_dir, device)
    params = random_parameters(n_timesteps)
    model.evaluate(params.take(slice(0, WARM_UP_TIMESTEPS)), batch_size=batch_size)
    if model.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(model.device)
    # Each run ends with the vertices in host memory (numpy), as a user gets them.
    seconds, vertices = fastest(lambda: model.evaluate(params, batch_size=batch_size).vertices, repeats)
    extra = {"device": str(model.device), "batch_size": batch_size or default_batch_size(model.device),
             "gemm_gflops": gemm_gflops(str(model.device))}
    if model.device.type == "cuda":
        extra["gpu_peak_mib"] = torch.cuda.max_memory_allocated(model.device) / 2**20
        extra["gpu"] = torch.cuda.get_device_name(model.device)
    return seconds, vertices, extra


def child(args: argparse.Namespace) -> None:
    """One measured phase in this (fresh) process; writes its vertices and prints one JSON line."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.phase == "reference":
        seconds, vertices, extra = run_reference(args.flame_dir, args.timesteps, args.repeats)
    else:
        seconds, vertices, extra = run_batched(
            args.flame_dir, args.timesteps, args.device, args.batch_size, args.repeats)
    np.save(args.output, vertices.astype(np.float32))
    peak_mib = peak_rss_mib()
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_mib, "threads": torch.get_num_threads(), **extra}))


def measure(phase: str, args: argparse.Namespace, flame_dir: Path, output: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_flame", "--phase", phase, "--flame-dir", str(flame_dir),
               "--timesteps", str(args.timesteps), "--device", args.device, "--output", str(output),
               "--repeats", str(args.repeats)]
    command += ["--batch-size", str(args.batch_size)] if args.batch_size else []
    command += ["--threads", str(args.threads)] if args.threads else []
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--device", default="cpu", help="device of the batched path: cpu, cuda or auto")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 128 on CPU, from free GPU memory")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per phase; the fastest counts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in both phases (default: torch's)")
    parser.add_argument("--flame-dir", type=Path, default=None, help="default: the stand-in in a temporary folder")
    parser.add_argument("--quick", action="store_true", help="a short setting: 300 timesteps, 2 runs per phase")
    parser.add_argument("--rows", type=Path, default=None, help="append the result to this benchmark-table file")
    parser.add_argument("--phase", choices=["reference", "batched"], help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child(args)
        return
    if args.quick:
        args.timesteps, args.repeats = 300, 2

    import torch

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        flame_dir = args.flame_dir
        if flame_dir is None:
            from nersemble_zarr.flame.standin import write_standin_flame

            flame_dir = folder / "flame"
            write_standin_flame(flame_dir, chumpy_objects=False)
        load = os.getloadavg()[0]
        reference = measure("reference", args, flame_dir, folder / "reference.npy")
        batched = measure("batched", args, flame_dir, folder / "batched.npy")
        difference = float(np.abs(np.load(folder / "reference.npy") - np.load(folder / "batched.npy")).max())

    rate = lambda result: args.timesteps / result["seconds"]
    model = "stand-in (FLAME 2023 sizes, NOT FLAME)" if args.flame_dir is None else str(args.flame_dir)
    print(f"FLAME meshes of one {args.timesteps}-timestep sequence; model: {model}; torch {torch.__version__}; "
          f"{os.cpu_count()} CPUs, load average {load:.2f} at start; fastest of {args.repeats} runs")
    print(f"  reference (flame_model forward per timestep + transform, cpu, {reference['threads']} threads): "
          f"{reference['seconds']:.2f} s, {rate(reference):.0f} meshes/s, peak RSS {reference['peak_rss_mib']:.0f} MiB")
    gpu = (f", {batched['gpu']}, peak GPU memory {batched['gpu_peak_mib']:.0f} MiB"
           if "gpu_peak_mib" in batched else "")
    print(f"  batched (FlameModel.evaluate, {batched['device']}, batch {batched['batch_size']}, "
          f"{batched['threads']} threads{gpu}): {batched['seconds']:.3f} s, {rate(batched):.0f} meshes/s, "
          f"peak RSS {batched['peak_rss_mib']:.0f} MiB")
    print(f"  speed-up: {rate(batched) / rate(reference):.1f}x; largest vertex difference {difference:.2e} m")
    flops = flops_per_mesh()
    limit = batched["gemm_gflops"] * 1e9 / flops
    print(f"  arithmetic limit: {flops / 1e6:.2f} MFLOP per mesh at {batched['gemm_gflops']:.0f} GFLOP/s "
          f"(float32 {GEMM_SIZE}x{GEMM_SIZE} GEMM, same threads) = {limit:.0f} meshes/s; "
          f"the batched path reaches {rate(batched) / limit:.0%} of it")
    append_rows(args.rows, [Row(
        benchmark="flame", what=f"FLAME meshes, {args.timesteps} timesteps, {batched['device']}, {batched['threads']} threads",
        ours=f"{rate(batched):.0f} meshes/s", baseline=f"{rate(reference):.0f} meshes/s (official per-timestep loop)",
        ratio=rate(batched) / rate(reference),
        limit=f"{limit:.0f} meshes/s ({flops / 1e6:.2f} MFLOP/mesh at {batched['gemm_gflops']:.0f} GFLOP/s): "
              f"{rate(batched) / limit:.0%}; target 20x",
        peak_mib=peak_pair(batched, reference),
    )])


if __name__ == "__main__":
    main()
