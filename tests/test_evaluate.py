"""evaluate: metrics against independent implementations, every prediction form, LPIPS/JOD wiring, bad input."""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from skimage.metrics import structural_similarity

from helpers import predictions_dataset, write_predictions
from nersemble_zarr import catalogue, schema
from nersemble_zarr import store as store_module
from nersemble_zarr.cli.main import main as cli
from nersemble_zarr.errors import EvaluationError, InputDataError
from nersemble_zarr.evaluation import ValidationSplit, evaluate
from nersemble_zarr.evaluation.lpips import ALEXNET_FILE, LINEAR_WEIGHTS
from nersemble_zarr.video import VideoWriter

NVS = (388, "GLASSES")
NVS_CAMERAS = ("222200042", "222200044")  # train cameras of the tiny synthetic NVS sequence
MONO = (393, "EXP-1-head", catalogue.MONO_TRAIN_SERIAL)
NO_EXTRAS = {"lpips": False, "jod": False, "workers": 2}


def truth(store: Path, benchmark: str, participant: int, sequence: str, serial: str) -> tuple[np.ndarray, np.ndarray]:
    dataset = store_module.sequence(store_module.open(store, dask=False), benchmark, participant, sequence)
    camera = dataset.sel({schema.SERIAL: serial})
    return camera[schema.IMAGES].values, camera[schema.ALPHA].values


def noisy(frames: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(frames.astype(np.int16) + rng.integers(-20, 21, frames.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def nvs_predictions(converted) -> dict:
    return {(*NVS, serial): noisy(truth(converted, "nvs", *NVS, serial)[0], i) for i, serial in enumerate(NVS_CAMERAS)}


def write_prediction_store(path: Path, predictions: dict, benchmark: str = "nvs") -> Path:
    groups = {}
    for p, s in sorted({(p, s) for p, s, _ in predictions}):
        serials = [serial for q, t, serial in predictions if (q, t) == (p, s)]
        images = np.stack([predictions[p, s, serial] for serial in serials])
        groups[schema.sequence_group(benchmark, p, s)] = predictions_dataset(serials, images)
    return write_predictions(path, groups)


def write_prediction_folder(path: Path, predictions: dict) -> Path:
    for (p, s, serial), frames in predictions.items():
        folder = path / f"{p:03d}" / s / f"cam_{serial}"
        folder.mkdir(parents=True)
        for index, frame in enumerate(frames):
            (folder / f"{index:05d}.png").write_bytes(imagecodecs.png_encode(frame))
    return path


def numpy_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1, channel_axis=-1, K1=0.01, K2=0.03)


def on_white(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[..., None] / 255
    return image.astype(np.float64) / 255 * a + (1 - a)


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


# ---------------------------------------------------------------- PSNR and SSIM
def test_psnr_and_ssim_equal_numpy_and_scikit_image_full_and_masked(converted, nvs_predictions):
    mono_truth = truth(converted, "mono_flame_avatar", *MONO)[0]
    nvs_result = evaluate(nvs_predictions, converted, "nvs", **NO_EXTRAS)
    mono_result = evaluate({MONO: noisy(mono_truth, 7)}, converted, "mono_flame_avatar", **NO_EXTRAS)
    checked = 0
    for result, benchmark, predictions in ((nvs_result, "nvs", nvs_predictions),
                                           (mono_result, "mono_flame_avatar", {MONO: noisy(mono_truth, 7)})):
        for video in result.videos:
            key = (video.participant, video.sequence, video.serial)
            images, alpha = truth(converted, benchmark, *key)
            assert len(video.frames) == len(images)
            for position, frame in enumerate(video.frames):
                prediction, reference = predictions[key][position] / 255.0, images[position] / 255.0
                assert frame.psnr == pytest.approx(numpy_psnr(prediction, reference), abs=1e-6)
                assert frame.ssim == pytest.approx(skimage_ssim(prediction, reference), abs=1e-4)
                masked = on_white(predictions[key][position], alpha[position]), on_white(images[position], alpha[position])
                assert frame.psnr_masked == pytest.approx(numpy_psnr(*masked), abs=1e-6)
                assert frame.ssim_masked == pytest.approx(skimage_ssim(*masked), abs=1e-4)
                checked += 1
            assert video.mean("psnr") == pytest.approx(np.mean([f.psnr for f in video.frames]), abs=1e-9)
    assert checked == 2 * 6 + 6


def test_identical_predictions_give_infinite_psnr_and_ssim_one(converted, tmp_path):
    key = (*NVS, NVS_CAMERAS[0])
    result = evaluate({key: truth(converted, "nvs", *key)[0]}, converted, "nvs", **NO_EXTRAS)
    assert all(math.isinf(f.psnr) and f.psnr > 0 for f in result.videos[0].frames)
    assert all(f.ssim == pytest.approx(1.0, abs=1e-12) for f in result.videos[0].frames)
    assert math.isinf(result.mean()["psnr"]) and result.mean()["ssim"] == pytest.approx(1.0)
    result.write_json(tmp_path / "scores.json")
    document = json.loads((tmp_path / "scores.json").read_text())
    assert document["mean"]["psnr"] == math.inf and document["videos"][0]["psnr_masked"] == math.inf


def test_json_csv_and_dataset_carry_the_same_scores(converted, nvs_predictions, tmp_path):
    result = evaluate(nvs_predictions, converted, "nvs", **NO_EXTRAS)
    result.write_json(tmp_path / "s.json")
    result.write_csv(tmp_path / "s.csv")
    document = json.loads((tmp_path / "s.json").read_text())
    metric_keys = {"psnr", "ssim", "lpips", "jod", "psnr_masked", "ssim_masked", "lpips_masked"}
    assert set(document) == {"benchmark", "videos", "mean"} and document["benchmark"] == "nvs"
    assert set(document["mean"]) == metric_keys
    for record, serial in zip(document["videos"], NVS_CAMERAS):
        assert set(record) == {"participant", "sequence", "serial", "n_frames"} | metric_keys
        assert (record["participant"], record["sequence"], record["serial"], record["n_frames"]) == (*NVS, serial, 6)
        assert record["lpips"] is None and record["jod"] is None
    dataset = result.dataset()
    camera = dataset.sel(serial=NVS_CAMERAS[1])
    assert float(camera["psnr"].mean()) == pytest.approx(document["videos"][1]["psnr"], abs=1e-12)
    assert list(camera["timestep"].values) == list(range(0, 18, 3))
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert len(rows) == 1 + 12 and rows[0].startswith("participant,sequence,serial,timestep,psnr")
    assert float(rows[1].split(",")[4]) == float(dataset["psnr"].values[0])


# ---------------------------------------------------------------- prediction forms
def test_zip_folder_and_store_of_the_same_predictions_give_the_same_numbers(converted, nvs_predictions, tmp_path):
    archive = tmp_path / "predictions.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for (p, s, serial), frames in nvs_predictions.items():
            video = tmp_path / f"{serial}.mp4"
            with VideoWriter(video, width=frames.shape[2], height=frames.shape[1], fps=catalogue.NVS_FPS) as writer:
                writer.write_all(frames)
            handle.write(video, catalogue.submission_entry(p, s, serial))
    from nersemble_zarr.video import iter_frames

    decoded = {}
    with zipfile.ZipFile(archive) as handle:
        for key in nvs_predictions:
            target = tmp_path / "decoded.mp4"
            target.write_bytes(handle.read(catalogue.submission_entry(*key)))
            decoded[key] = np.stack(list(iter_frames(target)))
    forms = {
        "zip": archive,
        "folder": write_prediction_folder(tmp_path / "folder", decoded),
        "store": write_prediction_store(tmp_path / "pred.zarr", decoded),
        "mapping": decoded,
    }
    scores = {name: evaluate(form, converted, "nvs", **NO_EXTRAS).to_dict() for name, form in forms.items()}
    assert scores["zip"] == scores["folder"] == scores["store"] == scores["mapping"]
    assert scores["zip"]["mean"]["psnr"] < 60  # H.264 changed the frames: real numbers, not inf


def test_every_timesteps_and_cameras_restrict_the_frames(converted, nvs_predictions):
    result = evaluate(nvs_predictions, converted, "nvs", every=2, cameras=[NVS_CAMERAS[1]], **NO_EXTRAS)
    assert [(v.serial, [f.timestep for f in v.frames]) for v in result.videos] == [(NVS_CAMERAS[1], [0, 6, 12])]
    result = evaluate(nvs_predictions, converted, "nvs", timesteps=[3, 15], **NO_EXTRAS)
    assert [[f.timestep for f in v.frames] for v in result.videos] == [[3, 15], [3, 15]]
    with pytest.raises(EvaluationError, match="Timestep 4 is not a stored frame"):
        evaluate(nvs_predictions, converted, "nvs", timesteps=[4], **NO_EXTRAS)


# ---------------------------------------------------------------- LPIPS
def _reference_lpips(state: dict, prediction: np.ndarray, reference: np.ndarray) -> float:
    """LPIPS v0.1 (AlexNet) written out with torch.nn.functional, as in the ``lpips`` package."""
    import torch.nn.functional as F

    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    convs = [(0, 4, 2), (3, 1, 2), (6, 1, 1), (8, 1, 1), (10, 1, 1)]  # (layer, stride, padding)
    linear = np.load(LINEAR_WEIGHTS)

    def features(image: np.ndarray) -> list[torch.Tensor]:
        x = torch.from_numpy(image).float().permute(2, 0, 1)[None]
        x = ((2 * x - 1) - shift) / scale
        taps = []
        for i, (layer, stride, padding) in enumerate(convs):
            if i in (1, 2):
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(F.conv2d(x, state[f"features.{layer}.weight"], state[f"features.{layer}.bias"], stride, padding))
            taps.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return taps

    total = 0.0
    for i, (a, b) in enumerate(zip(features(prediction), features(reference))):
        total += float(F.conv2d((a - b) ** 2, torch.from_numpy(linear[f"lin{i}"])).mean())
    return total


def random_alexnet(torch_home: Path) -> dict:
    """Random AlexNet weights under torchvision's names, saved where torch's hub cache keeps them."""
    generator = torch.Generator().manual_seed(0)
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    state = {}
    for layer, shape in shapes.items():
        state[f"features.{layer}.weight"] = torch.randn(shape, generator=generator) * 0.05
        state[f"features.{layer}.bias"] = torch.randn(shape[0], generator=generator) * 0.01
    state["classifier.1.weight"] = torch.zeros(8, 4)  # the classifier is ignored, as LPIPS ignores it
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(state, checkpoints / ALEXNET_FILE)
    return state


def test_lpips_equals_the_reference_with_the_same_backbone_weights(converted, nvs_predictions, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    state = random_alexnet(tmp_path / "torch")
    key = (*NVS, NVS_CAMERAS[0])
    result = evaluate({key: nvs_predictions[key]}, converted, "nvs", timesteps=[0, 9], lpips=True, jod=False,
                      device="cpu", workers=1)
    assert result.unavailable == ()
    images, alpha = truth(converted, "nvs", *key)
    for frame, position in zip(result.videos[0].frames, (0, 3)):
        expected = _reference_lpips(state, nvs_predictions[key][position] / 255.0, images[position] / 255.0)
        assert frame.lpips == pytest.approx(expected, rel=1e-4, abs=1e-6)
        masked = _reference_lpips(state, on_white(nvs_predictions[key][position], alpha[position]),
                                  on_white(images[position], alpha[position]))
        assert frame.lpips_masked == pytest.approx(masked, rel=1e-4, abs=1e-6)
    assert result.videos[0].frames[0].lpips > 0


def test_lpips_without_alexnet_weights_is_one_sentence_and_the_rest_is_scored(converted, nvs_predictions,
                                                                             tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    predictions = write_prediction_store(tmp_path / "pred.zarr", nvs_predictions)
    result = run("evaluate", predictions, "--store", converted, "-b", "nvs", "--no-jod", "--json",
                 tmp_path / "s.json", "-j", "2")
    assert result.exit_code == 0, result.output
    expected = tmp_path / "empty" / "hub" / "checkpoints" / ALEXNET_FILE
    assert f"LPIPS is unavailable: torchvision's AlexNet weights {ALEXNET_FILE} are not at {expected}" in result.stderr
    document = json.loads((tmp_path / "s.json").read_text())
    assert document["mean"]["lpips"] is None and document["mean"]["psnr"] > 0


def test_a_corrupt_alexnet_file_is_one_sentence(converted, nvs_predictions, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "torch" / "hub" / "checkpoints" / ALEXNET_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(InputDataError, match="is not torchvision's AlexNet weights file"):
        evaluate(nvs_predictions, converted, "nvs", lpips=True, jod=False, device="cpu")


# ---------------------------------------------------------------- JOD
def test_jod_runs_on_cpu_on_a_short_clip(converted, nvs_predictions):
    key = (*NVS, NVS_CAMERAS[0])
    predictions = {key: nvs_predictions[key], (*NVS, NVS_CAMERAS[1]): truth(converted, "nvs", *NVS, NVS_CAMERAS[1])[0]}
    result = evaluate(predictions, converted, "nvs", lpips=False, jod=True, device="cpu", workers=2)
    jod = {video.serial: video.jod for video in result.videos}
    assert jod[NVS_CAMERAS[1]] == pytest.approx(10.0, abs=1e-3)  # identical video: no visible difference
    assert 0 < jod[NVS_CAMERAS[0]] < 9.9


# ---------------------------------------------------------------- bad predictions through the CLI
def _one_sentence_error(result, *fragments: str) -> None:
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_predictions_are_one_sentence_each(converted, nvs_predictions, tmp_path):
    key = (*NVS, NVS_CAMERAS[0])
    common = ["--store", converted, "-b", "nvs", "--no-lpips", "--no-jod", "--json", tmp_path / "s.json"]

    small = write_prediction_store(tmp_path / "small.zarr", {key: nvs_predictions[key][:, :80, :60]})
    _one_sentence_error(run("evaluate", small, *common), "have shape (80, 60, 3)", "expected (160, 110, 3)")

    hidden = write_prediction_store(tmp_path / "hidden.zarr", {(*NVS, catalogue.NVS_HOLD_OUT_SERIALS[0]): nvs_predictions[key]})
    _one_sentence_error(run("evaluate", hidden, *common), "has no ground truth", "hidden hold-out views")

    missing = write_prediction_store(tmp_path / "missing.zarr", {(443, "FREE", NVS_CAMERAS[0]): nvs_predictions[key]})
    _one_sentence_error(run("evaluate", missing, *common), "has no ground truth", "holds no frames of nvs/443/FREE")

    mono_frames = truth(converted, "mono_flame_avatar", *MONO)[0]
    test_sequence = write_prediction_store(tmp_path / "free.zarr", {(393, "FREE", MONO[2]): mono_frames},
                                           "mono_flame_avatar")
    mono = ["--store", converted, "-b", "mono_flame_avatar", "--no-lpips", "--no-jod"]
    _one_sentence_error(run("evaluate", test_sequence, *mono), "has no ground truth", "hidden test sequences")

    with_nan = nvs_predictions[key] / 255.0
    with_nan[4, 10, 10, 1] = np.nan
    nan_store = write_prediction_store(tmp_path / "nan.zarr", {key: with_nan})
    _one_sentence_error(run("evaluate", nan_store, *common), "Frame 4 of 388/GLASSES/cam_222200042.mp4 has NaN values")

    if not torch.cuda.is_available():
        _one_sentence_error(run("evaluate", small, *common, "--device", "cuda"), "torch sees no CUDA GPU")
    _one_sentence_error(run("evaluate", small, *common, "--device", "tpu9"), "Device 'tpu9'")

    short = write_prediction_store(tmp_path / "short.zarr", {key: nvs_predictions[key][:4]})
    _one_sentence_error(run("evaluate", short, *common), "has 4 frames", "expects 6")
    assert not (tmp_path / "s.json").exists()


# ---------------------------------------------------------------- validation splits
def test_a_split_is_the_same_in_frame_dataset_export_frames_and_evaluate(converted, nvs_predictions, tmp_path):
    from nersemble_zarr.export_frames import export_frames
    from nersemble_zarr.torch_dataset import FrameDataset

    split_file = tmp_path / "split.json"
    result = run("split", split_file, "-b", "nvs", "--cameras", NVS_CAMERAS[0], "--trailing-frames", "2")
    assert result.exit_code == 0, result.output
    held_out = {(serial, t) for serial in NVS_CAMERAS[:1] for t in range(0, 18, 3)}
    held_out |= {(serial, t) for serial in catalogue.NVS_TRAIN_SERIALS for t in (12, 15)}

    train = FrameDataset(converted, "nvs", split="train", validation=split_file)
    validation = FrameDataset(converted, "nvs", split="validation", validation=split_file)
    train_keys = {train.item_key(i)[1:] for i in range(len(train))}
    validation_keys = {validation.item_key(i)[1:] for i in range(len(validation))}
    assert validation_keys == held_out and not train_keys & validation_keys
    assert len(train_keys | validation_keys) == len(catalogue.NVS_TRAIN_SERIALS) * 6

    out = tmp_path / "export"
    export_frames(converted, out, participant=388, validation=split_file, workers=2)
    listed = {name: {(f["camera_id"], f["timestep_index_original"])
                     for f in json.loads((out / f"transforms_{name}.json").read_text())["frames"]}
              for name in ("train", "val", "test")}
    assert listed["val"] == listed["test"] == held_out and listed["train"] == train_keys

    scores = evaluate(nvs_predictions, converted, "nvs", validation=split_file, **NO_EXTRAS)
    assert {(v.serial, f.timestep) for v in scores.videos for f in v.frames} == {
        key for key in held_out if key[0] in NVS_CAMERAS}


def test_a_split_kept_in_the_store_reads_back(converted, tmp_path):
    import shutil

    from nersemble_zarr.evaluation import read_split, write_split

    copy = tmp_path / "store.zarr"
    shutil.copytree(converted, copy)
    split = ValidationSplit("mono_flame_avatar", sequences=("EXP-2-eyes",), trailing_frames=3)
    write_split(split, copy)
    assert read_split(copy) == split
    store_module.open(copy)  # still a readable store


@pytest.mark.parametrize(("arguments", "message"), [
    ({"serials": ("222200037",)}, "hold-out camera of nvs"),
    ({"sequences": ("GLASSES",)}, "only mono_flame_avatar train sequences"),
    ({"trailing_frames": -1}, "Trailing frames -1 is invalid"),
    ({}, "must hold out cameras, sequences or trailing frames"),
])
def test_bad_splits_are_one_sentence(arguments, message):
    from nersemble_zarr.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        ValidationSplit("nvs", **arguments)


def test_the_plot_is_a_png_of_the_scores(converted, nvs_predictions, tmp_path):
    predictions = write_prediction_store(tmp_path / "pred.zarr", nvs_predictions)
    result = run("evaluate", predictions, "--store", converted, "-b", "nvs", "--no-lpips", "--no-jod",
                 "--plot", tmp_path / "scores.png", "--csv", tmp_path / "s.csv")
    assert result.exit_code == 0, result.output
    assert "388/GLASSES/222200042" in result.stdout and "nvs (mean of videos)" in result.stdout
    picture = imagecodecs.png_decode((tmp_path / "scores.png").read_bytes())
    assert picture.shape[0] > 300 and picture.shape[1] > 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.zarr", "s.csv", "scores.png"]


def test_the_gpu_ssim_path_equals_the_cpu_path():
    """The torch convolution path (taken on CUDA) and the scipy path (taken on the CPU) give one SSIM."""
    from nersemble_zarr.evaluation.metrics import _blur, _gaussian_window, _ssim_map_mean, ssim

    generator = torch.Generator().manual_seed(1)
    a = torch.rand(2, 3, 40, 30, generator=generator, dtype=torch.float64)
    b = (a + 0.1 * torch.rand(2, 3, 40, 30, generator=generator, dtype=torch.float64)).clamp(0, 1)
    moments = _blur(torch.cat([a, b, a * a, b * b, a * b], dim=1), _gaussian_window(a.device, a.dtype))
    torch.testing.assert_close(_ssim_map_mean(*moments.split(3, dim=1)).mean(dim=1), ssim(a, b), rtol=0, atol=1e-12)
