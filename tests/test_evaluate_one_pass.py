"""evaluate's one pass: every frame read once, SSIM equal to scikit-image at any frame size and strip split,
float and uint8 predictions scored alike, and the LPIPS protocol stated wherever LPIPS numbers go."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from nersemble_zarr.chunk_reader import StoredFrames
from nersemble_zarr.evaluation import evaluate
from nersemble_zarr.evaluation.lpips import PROTOCOL
from nersemble_zarr.evaluation.metrics import STRIP_ROWS, frame_tensors, score_frames, squared_errors
from test_evaluate import NO_EXTRAS, NVS, NVS_CAMERAS, noisy, random_alexnet, truth


def _frames(shape: tuple[int, int], k: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, 256, (k, *shape, 3), dtype=np.uint8)
    prediction = np.clip(reference.astype(np.int16) + rng.integers(-30, 31, reference.shape), 0, 255).astype(np.uint8)
    return prediction, reference, rng.integers(0, 256, (k, *shape), dtype=np.uint8)


def _skimage(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
                                 channel_axis=-1)


@pytest.mark.parametrize("shape", [(11, 13), (STRIP_ROWS + 10, 20), (STRIP_ROWS + 11, 17), (3 * STRIP_ROWS + 25, 40)])
def test_ssim_and_psnr_equal_scikit_image_at_any_strip_split(shape):
    prediction, reference, alpha = _frames(shape)
    scores = score_frames(frame_tensors(prediction, reference, alpha, 255.0, "cpu"),
                          squared_errors(prediction, reference, alpha, 255.0))
    for i in range(len(prediction)):
        x, y, a = prediction[i] / 255.0, reference[i] / 255.0, alpha[i][..., None] / 255.0
        assert float(scores["ssim"][i]) == pytest.approx(_skimage(x, y), abs=1e-4)
        assert float(scores["psnr"][i]) == pytest.approx(10 * np.log10(1 / np.mean((x - y) ** 2)), abs=1e-6)
        xm, ym = x * a + (1 - a), y * a + (1 - a)
        assert float(scores["ssim_masked"][i]) == pytest.approx(_skimage(xm, ym), abs=1e-4)
        assert float(scores["psnr_masked"][i]) == pytest.approx(10 * np.log10(1 / np.mean((xm - ym) ** 2)), abs=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_predictions_score_as_their_uint8_values(dtype):
    prediction, reference, alpha = _frames((50, 30))
    as_uint8 = score_frames(frame_tensors(prediction, reference, alpha, 255.0, "cpu"),
                            squared_errors(prediction, reference, alpha, 255.0))
    floats = (prediction / 255.0).astype(dtype)
    as_float = score_frames(frame_tensors(floats, reference, alpha, 1.0, "cpu"),
                            squared_errors(floats, reference, alpha, 1.0))
    tolerance = {"psnr": 1e-5 if dtype == np.float32 else 1e-9, "ssim": 1e-6}
    for name, values in as_uint8.items():
        torch.testing.assert_close(as_float[name], values, rtol=0, atol=tolerance[name.split("_")[0]])


def test_each_frame_is_read_once_without_jod(converted, monkeypatch):
    reads = []
    original = StoredFrames.read

    def counted(self, serial, timestep):
        reads.append((serial, timestep))
        return original(self, serial, timestep)

    monkeypatch.setattr(StoredFrames, "read", counted)
    key = (*NVS, NVS_CAMERAS[0])
    result = evaluate({key: noisy(truth(converted, "nvs", *key)[0], 1)}, converted, "nvs", **NO_EXTRAS)
    frames = len(result.videos[0].frames)
    assert frames == 6 and len(reads) == 2 * frames  # images and alpha, once each
    assert len(set(reads)) == frames


def test_the_lpips_protocol_goes_with_lpips_numbers(converted, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    random_alexnet(tmp_path / "torch")
    key = (*NVS, NVS_CAMERAS[0])
    predictions = {key: noisy(truth(converted, "nvs", *key)[0], 2)}
    result = evaluate(predictions, converted, "nvs", timesteps=[0], lpips=True, jod=False, device="cpu", workers=1)
    result.write_json(tmp_path / "scores.json")
    assert json.loads((tmp_path / "scores.json").read_text())["lpips_protocol"] == PROTOCOL
    assert "AlexNet" in PROTOCOL and "[-1, 1]" in PROTOCOL
    assert result.table().splitlines()[-1] == f"lpips: {PROTOCOL}"
    assert result.dataset().attrs["lpips_protocol"] == PROTOCOL
    without = evaluate(predictions, converted, "nvs", timesteps=[0], **NO_EXTRAS)
    assert "lpips_protocol" not in without.to_dict() and "lpips:" not in without.table()
