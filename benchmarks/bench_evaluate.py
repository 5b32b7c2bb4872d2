"""evaluate throughput vs a plain per-frame loop with scikit-image / torchmetrics, and peak memory.

    python -m benchmarks.bench_evaluate --cameras 2 --frames 12 --workers 2

Full-resolution synthetic NVS videos (1100x1604) are generated and converted once, and a predictions store
is written (ground truth plus noise). Then, each phase in its own process (peak memory = that process's
peak resident set size), on the same frames, full frame and masked:

(a) PSNR + SSIM: ``evaluate(lpips=False, jod=False)`` vs a loop over frames that reads each frame pair and
    calls numpy PSNR and scikit-image ``structural_similarity`` (the settings of docs/evaluation.md);
(b) PSNR + SSIM + LPIPS: ``evaluate(jod=False)`` vs a loop calling torchmetrics' PSNR and SSIM and LPIPS
    one frame at a time, LPIPS being the ``lpips`` package's forward written out (:func:`reference_lpips`;
    torchmetrics' own LPIPS calls that package and needs torchvision, which does not install beside this
    torch) on the same weights. LPIPS uses random AlexNet weights in a temporary hub cache: the speed is
    that of the real weights.
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
from nersemble_zarr import catalogue, schema

PARTICIPANT, SEQUENCE = 388, "GLASSES"
SKIMAGE_TARGET, TORCHMETRICS_TARGET = 3.0, 1.5
# One batch of evaluate at full resolution: one frame's prediction, truth (float32, 3 channels) and alpha (1),
# and the uint8 frames they came from.
BATCH_MIB = catalogue.NVS_WIDTH * catalogue.NVS_HEIGHT * (7 * 4 + 7) / 2**20



def _serials(args) -> tuple[str, ...]:
    return catalogue.NVS_TRAIN_SERIALS[: args.cameras]


def phase_generate(args) -> dict:
    import numpy as np
    import torch
    import xarray as xr

    from nersemble_zarr import store as store_module
    from nersemble_zarr.convert import convert
    from nersemble_zarr.evaluation.lpips import ALEXNET_FILE
    from nersemble_zarr.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(scale=1.0, n_frames=args.frames, nvs_participants=(PARTICIPANT,),
                             nvs_serials=_serials(args), mono_participants=(), svfr_participants=(), n_points=1000)
    generate(args.root, config, workers=os.cpu_count() or 1)
    convert(args.root, args.store, benchmarks=("nvs",), workers=args.workers)
    dataset = store_module.sequence(store_module.open(args.store, dask=False), "nvs", PARTICIPANT, SEQUENCE)
    truth = dataset[schema.IMAGES].sel({schema.SERIAL: list(_serials(args))}).values
    noise = np.random.default_rng(0).integers(-12, 13, truth.shape, dtype=np.int16)
    predictions = np.clip(truth + noise, 0, 255).astype(np.uint8)
    xr.DataTree.from_dict({schema.sequence_group("nvs", PARTICIPANT, SEQUENCE): xr.Dataset(
        {schema.IMAGES: ((schema.SERIAL, schema.TIMESTEP, schema.Y, schema.X, schema.CHANNEL), predictions)},
        coords={schema.SERIAL: np.array(_serials(args), dtype=object)},
    )}).to_zarr(args.predictions, consolidated=False,
                encoding={f"/nvs/{PARTICIPANT}/{SEQUENCE}": {schema.IMAGES: {"chunks": (1, 1, *truth.shape[2:])}}})
    checkpoints = args.work / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    from nersemble_zarr.evaluation.lpips import alexnet_features

    torch.manual_seed(0)
    torch.save({f"features.{k}": v for k, v in alexnet_features().state_dict().items()}, checkpoints / ALEXNET_FILE)
    return {}


def _pairs(args):
    """(prediction, truth, alpha) uint8 frames of every camera and timestep, read one at a time with zarr,
    as a plain script would."""
    import zarr

    group = f"nvs/{PARTICIPANT}/{SEQUENCE}"
    predictions = zarr.open_array(args.predictions, path=f"{group}/{schema.IMAGES}", mode="r")
    images = zarr.open_array(args.store, path=f"{group}/{schema.IMAGES}", mode="r")
    alpha = zarr.open_array(args.store, path=f"{group}/{schema.ALPHA}", mode="r")
    stored_serials = [str(serial) for serial in zarr.open_array(args.store, path=f"{group}/{schema.SERIAL}")[:]]
    for index, serial in enumerate(_serials(args)):
        stored = stored_serials.index(serial)
        for position in range(args.frames):
            yield predictions[index, position], images[stored, position], alpha[stored, position]


def _on_white(image, alpha):
    a = alpha[..., None] / 255.0
    return image / 255.0 * a + (1 - a)


def _timed_loop(args, scores) -> dict:
    """Seconds and frames of a plain per-frame loop calling ``scores`` on the full and the masked frames."""
    start, frames = time.perf_counter(), 0
    for prediction, truth, alpha in _pairs(args):
        scores(prediction / 255.0, truth / 255.0)
        scores(_on_white(prediction, alpha), _on_white(truth, alpha))
        frames += 1
    return {"seconds": time.perf_counter() - start, "frames": frames}


def phase_loop_skimage(args) -> dict:
    import numpy as np
    from skimage.metrics import structural_similarity

    def scores(a, b):
        psnr = 10 * np.log10(1 / np.mean((a - b) ** 2))
        ssim = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=1, channel_axis=-1)
        return psnr, ssim

    return _timed_loop(args, scores)


def reference_lpips():
    """LPIPS as torchmetrics computes it, i.e. the ``lpips`` package's ``LPIPS(net='alex')`` forward written out
    (ScalingLayer, torchvision's AlexNet slices, ``normalize_tensor``, ``NetLinLayer`` 1x1 convolutions,
    ``spatial_average``), on the same weights as evaluate's network: the usual way, not this package's."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from nersemble_zarr.evaluation.lpips import LINEAR_WEIGHTS, alexnet_features, alexnet_path

    features = alexnet_features()
    features.load_state_dict({key.removeprefix("features."): value for key, value in
                              torch.load(alexnet_path(), map_location="cpu", weights_only=True).items()})
    features.eval()
    with np.load(LINEAR_WEIGHTS) as lin:
        linear = [torch.from_numpy(lin[f"lin{i}"]) for i in range(5)]
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    slices = [features[0:2], features[2:5], features[5:8], features[8:10], features[10:12]]

    def taps(x):
        x = ((2 * x - 1) - shift) / scale  # lpips.LPIPS.forward(normalize=True), then its ScalingLayer
        out = []
        for layers in slices:
            x = layers(x)
            out.append(x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + 1e-10))
        return out

    @torch.no_grad()
    def lpips(a, b):
        return sum(F.conv2d((p - t) ** 2, w).mean(dim=(2, 3), keepdim=True) for p, t, w in zip(taps(a), taps(b), linear))

    return lpips


def phase_loop_torchmetrics(args) -> dict:
    import torch
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    network = reference_lpips()

    def scores(a, b):
        a, b = (torch.from_numpy(x).permute(2, 0, 1)[None].float() for x in (a, b))
        return (peak_signal_noise_ratio(a, b, data_range=1.0), structural_similarity_index_measure(a, b, data_range=1.0),
                network(a, b))

    return _timed_loop(args, scores)


def _evaluate(args, lpips: bool) -> dict:
    from nersemble_zarr.evaluation import evaluate

    start = time.perf_counter()
    result = evaluate(args.predictions, args.store, "nvs", lpips=lpips, jod=False, device="cpu", workers=args.workers)
    assert not result.unavailable, result.unavailable
    return {"seconds": time.perf_counter() - start, "frames": sum(len(v.frames) for v in result.videos)}


def phase_evaluate(args) -> dict:
    return _evaluate(args, lpips=False)


def phase_evaluate_lpips(args) -> dict:
    return _evaluate(args, lpips=True)


PHASES = phases_of(globals())


def _run(args, phase: str) -> dict:
    arguments = ["--work", str(args.work), "--cameras", str(args.cameras), "--frames", str(args.frames),
                 "--workers", str(args.workers)]
    environment = {**os.environ, "TORCH_HOME": str(args.work / "torch")}
    return run_phase("benchmarks.bench_evaluate", phase, arguments, env=environment)


def _line(label: str, ours: dict, loop: dict, loop_name: str) -> str:
    return (f"{label}: evaluate {ours['frames'] / ours['seconds']:.2f} frames/s, {loop_name} "
            f"{loop['frames'] / loop['seconds']:.2f} frames/s -> ratio {loop['seconds'] / ours['seconds']:.2f} "
            f"(peak RSS {ours['peak_rss_mib']:.0f} / {loop['peak_rss_mib']:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--phase", choices=sorted(PHASES))
    parser.add_argument("--work", type=Path)
    args = parse_benchmark_args(parser, {"cameras": 1, "frames": 2})
    if args.phase:
        args.root, args.store = args.work / "fetched", args.work / "store.zarr"
        args.predictions = args.work / "predictions.zarr"
        report_phase(PHASES, args.phase, args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
        args.work = Path(tmp)
        _run(args, "generate")
        plain = (_run(args, "evaluate"), _run(args, "loop_skimage"))
        lpips = (_run(args, "evaluate_lpips"), _run(args, "loop_torchmetrics"))
    print(f"full resolution {catalogue.NVS_WIDTH}x{catalogue.NVS_HEIGHT}, {args.cameras} cameras x {args.frames} "
          f"frames, full frame + masked, {args.workers} workers for evaluate, CPU")
    print(_line("(a) PSNR+SSIM", *plain, "numpy + scikit-image loop"))
    print(_line("(b) PSNR+SSIM+LPIPS", *lpips, "torchmetrics + LPIPS loop"))
    size = f"{args.cameras} cameras x {args.frames} frames, full frame + masked, CPU"
    append_rows(args.rows, [
        _row(f"(a) evaluate PSNR + SSIM, {args.workers} workers, {size}", *plain, "numpy + scikit-image loop",
             SKIMAGE_TARGET),
        _row(f"(b) evaluate PSNR + SSIM + LPIPS, {args.workers} workers, {size}", *lpips, "torchmetrics + LPIPS loop",
             TORCHMETRICS_TARGET),
    ])


def _row(what: str, ours: dict, loop: dict, loop_name: str, target: float) -> Row:
    rate = lambda result: result["frames"] / result["seconds"]
    allowed = loop["peak_rss_mib"] + BATCH_MIB
    limit = (f"target >= {target:g}x; peak RSS target <= the loop's + one batch ({BATCH_MIB:.0f} MiB) = "
             f"{allowed:.0f} MiB: {'met' if ours['peak_rss_mib'] <= allowed else 'missed'}")
    return Row("evaluate", what, f"{rate(ours):.2f} frames/s", f"{rate(loop):.2f} frames/s ({loop_name})",
               loop["seconds"] / ours["seconds"], limit, peak_pair(ours, loop))


if __name__ == "__main__":
    main()
