"""Colour correction against the official ``nersemble-data`` 0.0.6 ``correct_color`` (and colour-science under it):
every Cheung 2004 ``terms``, every pixel of a full-size 2200 x 3208 frame, batches, levels, bad matrices and
``color_calibration.json`` files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import colour as colour_science
import numpy as np
import pytest
import torch
from colour.characterisation import matrix_augmented_Cheung2004
from nersemble_data.data.nersemble_data import NeRSembleParticipantDataManager
from nersemble_data.util.color_correction import correct_color

from nersemble_zarr import catalogue, colour, colour_kernel
from nersemble_zarr.colour import (
    CHEUNG2004_TERMS, SUPPORTED_TERMS, correct_colour, correct_colour_at_level, srgb_decoding_table,
    srgb_encoding_table,
)
from nersemble_zarr.colour_gpu import srgb_encode_uint8
from nersemble_zarr.errors import InputDataError
from nersemble_zarr.inputs.colour_calibration import read_colour_calibration
from nersemble_zarr.levels.resample import block_mean
from nersemble_zarr.synthetic.colour import camera_like_frame, near_identity_matrix

FULL_HEIGHT, FULL_WIDTH = 3208, 2200
SERIALS = catalogue.SERIALS


@pytest.fixture(scope="module")
def full_frame() -> np.ndarray:
    return camera_like_frame(FULL_HEIGHT, FULL_WIDTH)


@pytest.fixture(scope="module")
def distinct_colours(full_frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frame's distinct colours as a (1, n, 3) image, and each pixel's index into them."""
    packed = (full_frame[..., 0].astype(np.uint32) << 16) | (full_frame[..., 1].astype(np.uint32) << 8) \
        | full_frame[..., 2]
    values, inverse = np.unique(packed.ravel(), return_inverse=True)
    colours = np.stack([values >> 16, values >> 8, values], axis=-1).astype(np.uint8)  # astype keeps the low byte
    return colours[None], inverse


def test_the_frame_holds_every_level_of_every_channel(full_frame: np.ndarray) -> None:
    assert full_frame.shape == (FULL_HEIGHT, FULL_WIDTH, 3) and full_frame.dtype == np.uint8
    for channel in range(3):
        assert len(np.unique(full_frame[..., channel])) == 256


def test_supported_terms_are_exactly_those_colour_science_accepts() -> None:
    rgb = np.random.default_rng(0).random((5, 3))
    accepted = []
    for terms in range(1, 41):
        try:
            matrix_augmented_Cheung2004(rgb, terms)
            accepted.append(terms)
        except ValueError:
            pass
    assert tuple(accepted) == SUPPORTED_TERMS


@pytest.mark.parametrize("terms", SUPPORTED_TERMS)
def test_the_terms_are_colour_sciences_expansion_in_its_order(terms: int) -> None:
    rgb = np.random.default_rng(terms).random((50, 3))
    exponents = np.array([colour._exponents(term) for term in CHEUNG2004_TERMS[terms]])  # (terms, 3)
    ours = np.prod(rgb[:, None, :] ** exponents[None], axis=-1)
    np.testing.assert_allclose(ours, matrix_augmented_Cheung2004(rgb, terms), rtol=1e-12)


def test_the_decoding_table_is_colour_sciences_srgb_decoding() -> None:
    np.testing.assert_array_equal(srgb_decoding_table(), colour_science.cctf_decoding(np.arange(256) / 255.0))


def test_every_encoding_bin_holds_at_most_one_level_start() -> None:
    starts = srgb_decoding_table()[1:].astype(np.float32)
    bins = starts.view(np.uint32) >> colour.ENCODING_SHIFT
    assert np.bincount(bins).max() == 1
    table = srgb_encoding_table()
    assert table.shape == (colour.ENCODING_BINS,) and table.dtype == np.int32
    first_bits = np.arange(colour.ENCODING_BINS, dtype=np.int64) << colour.ENCODING_SHIFT
    first_levels = (table + first_bits) >> 16  # the level at each bin's lowest value
    assert first_levels[0] == 0 and first_levels[-1] == 255 and np.all(np.diff(first_levels) >= 0)


def _encode_on_cpu(samples: np.ndarray) -> np.ndarray:
    """The CPU kernel's levels of float32 linear values, taken as the three channels of a row."""
    channels = np.resize(samples, (3, -(-len(samples) // 3)))  # padded with the first values
    out = np.empty(channels.shape[::-1], np.uint8)
    colour_kernel.encode_levels(channels.view(np.int32), srgb_encoding_table(), colour.ENCODING_SHIFT, out)
    return out.T.ravel()[:len(samples)]


def _encode_with_torch(samples: np.ndarray) -> np.ndarray:
    """The torch (GPU path) levels of float32 linear values, computed here on the CPU."""
    return srgb_encode_uint8(torch.from_numpy(samples.copy()), torch.from_numpy(srgb_encoding_table())).numpy()


@pytest.mark.parametrize("encode", [_encode_on_cpu, _encode_with_torch])
def test_the_encoding_gives_the_official_level_of_any_linear_value(encode) -> None:
    rng = np.random.default_rng(1)
    starts = srgb_decoding_table()[1:].astype(np.float32)
    near_starts = (starts.view(np.int32)[:, None] + np.arange(-3, 4)[None]).astype(np.int32).view(np.float32)
    samples = np.concatenate([rng.uniform(-0.2, 1.3, 2_000_000).astype(np.float32), near_starts.ravel(),
                              np.float32([0.0, -0.0, 1.0, 1e-30, -1e30, 1e30, 0.0031308, 1.99, 2.0, np.inf, -np.inf])])
    official = np.clip(colour_science.cctf_encoding(samples.astype(np.float64)) * 255, 0, 255).astype(np.uint8)
    ours = encode(samples)
    assert np.abs(ours.astype(int) - official).max() <= 1
    different = samples[ours != official]  # only where the float32 of a level start rounded it: one ulp away
    ulps_away = np.abs(different.view(np.int32)[:, None] - starts.view(np.int32)[None]).min(axis=1)
    assert len(different) <= len(starts) and np.all(ulps_away <= 1)


@pytest.mark.parametrize("terms", SUPPORTED_TERMS)
def test_equal_to_the_official_within_one_level_on_every_pixel_of_a_full_size_frame(
    terms: int, full_frame: np.ndarray, distinct_colours: tuple[np.ndarray, np.ndarray]
) -> None:
    """The official ``correct_color`` is per pixel (it reshapes to (-1, 3)): applied once to each distinct colour of
    the frame, it gives its value at every pixel of that colour, in a fraction of the time and memory."""
    matrix = near_identity_matrix(terms, seed=terms)
    colours, inverse = distinct_colours
    official = correct_color(colours, matrix)[0][inverse].reshape(full_frame.shape)
    ours = correct_colour(full_frame, matrix)
    assert ours.shape == full_frame.shape and ours.dtype == np.uint8
    difference = np.abs(ours.astype(np.int16) - official)
    assert difference.max() <= 1
    assert np.count_nonzero(difference) <= 1e-4 * difference.size  # float32 near a level start, not a bias
    assert np.count_nonzero(ours != full_frame) > 0.2 * full_frame.size  # the matrix did change the frame


def test_a_batch_is_corrected_frame_by_frame() -> None:
    frames = np.stack([camera_like_frame(40, 300, seed=seed) for seed in range(3)])
    matrix = near_identity_matrix(10, seed=3)
    batch = correct_colour(frames, matrix)
    assert batch.shape == frames.shape and batch.dtype == np.uint8
    for frame, corrected in zip(frames, batch):
        np.testing.assert_array_equal(corrected, correct_colour(frame, matrix))
        assert np.abs(corrected.astype(int) - correct_color(frame, matrix)).max() <= 1
    assert frames.flags.writeable and not np.shares_memory(batch, frames)
    view = frames[:, ::2, ::3]  # a strided view is read as its values
    np.testing.assert_array_equal(correct_colour(view, matrix), correct_colour(np.ascontiguousarray(view), matrix))
    flipped = frames[:, ::-1, ::-1]  # negative strides
    np.testing.assert_array_equal(correct_colour(flipped, matrix), batch[:, ::-1, ::-1])
    fortran = np.asfortranarray(frames)
    np.testing.assert_array_equal(correct_colour(fortran, matrix), batch)
    read_only = frames.copy()
    read_only.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about tensors over read-only arrays: none is made visible
        np.testing.assert_array_equal(correct_colour(read_only, matrix), batch)


@pytest.mark.parametrize("terms", SUPPORTED_TERMS)
def test_as_float_equals_the_officials_float_result_unclipped(terms: int) -> None:
    """The official ``correct_color`` of ``frames / 255`` (its ``load_image`` without ``as_uint8``) neither clips
    nor truncates: a brightening matrix takes values above 1 and the linear segment below 0."""
    frames = np.stack([camera_like_frame(32, 256, seed=seed) for seed in range(2)])
    matrix = near_identity_matrix(terms, seed=terms) * 1.3
    matrix[:, 1] -= 0.2
    ours = correct_colour(frames, matrix, as_float=True)
    official = correct_color(frames / 255.0, matrix)
    assert ours.shape == frames.shape and ours.dtype == official.dtype == np.float64
    assert official.max() > 1.05 and official.min() < -0.01
    np.testing.assert_allclose(ours, official, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(ours[1], correct_colour(frames[1], matrix, as_float=True))


@pytest.mark.parametrize("level", [1, 2, 4])
def test_at_a_level_the_frame_is_area_averaged_then_corrected_as_the_official_orders_it(level: int) -> None:
    frames = np.stack([camera_like_frame(203, 302, seed=seed) for seed in range(2)])  # not multiples of 4
    matrix = near_identity_matrix(17, seed=level)
    ours = correct_colour_at_level(frames, matrix, level)
    averaged = frames if level == 1 else block_mean(frames, level)
    assert ours.shape == averaged.shape == (2, 203 // level, 302 // level, 3)
    for frame, corrected in zip(averaged, ours):
        assert np.abs(corrected.astype(int) - correct_color(frame, matrix)).max() <= 1
    np.testing.assert_array_equal(correct_colour_at_level(frames[1], matrix, level), ours[1])
    if level > 1:  # into a caller's buffer (convert's one per video): the same pixels, in that buffer
        buffer = np.zeros_like(ours[1])
        assert correct_colour_at_level(frames[1], matrix, level, out=buffer) is buffer
        np.testing.assert_array_equal(buffer, ours[1])


BAD_MATRICES = [
    (np.eye(3)[:, :2], "shape (3, 2)"),
    (np.zeros((3, 6)), "shape (3, 6)"),
    (np.zeros((3, 36)), "shape (3, 36)"),
    (np.zeros((4, 3)), "shape (4, 3)"),
    (np.zeros(3), "shape (3,)"),
    (np.zeros((1, 3, 3)), "shape (1, 3, 3)"),
    (np.array([[1.0, 0, 0], [0, np.nan, 0], [0, 0, 1]]), "NaN or infinite"),
    (np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, np.inf]]), "NaN or infinite"),
    ([[1, 0, 0], [0, 1], [0, 0, 1]], "not a rectangular array"),
    ([["1", "0", "0"]] * 3, "not real numbers"),
    (np.eye(3, dtype=bool), "bool values"),
    (np.eye(3) + 0j, "complex128 values"),
]


@pytest.mark.parametrize(("matrix", "named"), BAD_MATRICES)
def test_a_bad_matrix_is_refused_in_one_sentence_naming_it(matrix: object, named: str) -> None:
    for call in (lambda: correct_colour(np.zeros((2, 2, 3), np.uint8), matrix),
                 lambda: correct_colour_at_level(np.zeros((4, 4, 3), np.uint8), matrix, 2)):
        with pytest.raises(InputDataError) as caught:
            call()
        message = str(caught.value)
        assert message.startswith("The colour correction matrix ") and named in message
        assert message.endswith(".") and "\n" not in message and message.count(". ") == 0
    if "shape (3," in named:
        assert "3, 4, 5, 7, 8, 10, 11, 14, 16, 17, 19, 20, 22, 35" in message


@pytest.mark.parametrize(("frames", "named"), [
    (np.zeros((4, 4, 3), np.float32), "float32 of shape (4, 4, 3)"),
    (np.zeros((4, 4, 4), np.uint8), "uint8 of shape (4, 4, 4)"),
    (np.zeros((4, 4), np.uint8), "uint8 of shape (4, 4)"),
    (np.zeros((1, 1, 4, 4, 3), np.uint8), "uint8 of shape (1, 1, 4, 4, 3)"),
    ([[[0, 0, 0]]], "a list, not a numpy array"),
])
def test_bad_frames_are_refused_in_one_sentence(frames: object, named: str) -> None:
    with pytest.raises(InputDataError, match="The frames to colour-correct are") as caught:
        correct_colour(frames, np.eye(3))
    assert named in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("level", [0, -2, 2.0, True, "2"])
def test_a_bad_level_is_refused(level: object) -> None:
    with pytest.raises(InputDataError, match=f"The resolution level {level!r} is invalid"):
        correct_colour_at_level(np.zeros((4, 4, 3), np.uint8), np.eye(3), level)


def _write_calibration(folder: Path, document: object, participant: int = 17) -> Path:
    path = folder / f"{participant:03d}" / "calibration" / "color_calibration.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_the_reader_agrees_with_the_official_data_manager(tmp_path: Path) -> None:
    document = {SERIALS[3]: near_identity_matrix(10, seed=1).tolist(), SERIALS[0]: near_identity_matrix(3).tolist()}
    path = _write_calibration(tmp_path, document)
    ours = read_colour_calibration(path)
    official = NeRSembleParticipantDataManager(str(tmp_path), 17).load_color_calibration()
    assert list(ours) == list(official) == [SERIALS[3], SERIALS[0]]  # the file's order, as the official
    for serial, matrix in ours.items():
        assert matrix.dtype == np.float64
        np.testing.assert_array_equal(matrix, official[serial])


@pytest.mark.parametrize(("text", "named"), [
    ("[1, 2]", "should hold a JSON object of camera serials, found a list"),
    ("{}", "holds no camera's colour correction matrix"),
    ('{"123": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}', "names unknown camera serial '123'"),
    (json.dumps({SERIALS[0]: [["1", 0, 0], [0, 1, 0], [0, 0, 1]]}), f"non-numeric colour correction matrix for "
                                                                    f"camera {SERIALS[0]}"),
    (json.dumps({SERIALS[0]: [[True, 0, 0], [0, 1, 0], [0, 0, 1]]}), "non-numeric"),
    (json.dumps({SERIALS[0]: "identity"}), "non-numeric"),
    (json.dumps({SERIALS[0]: [[1, 0, 0], [0, 1], [0, 0, 1]]}), f"rows of different lengths in the colour "
                                                              f"correction matrix of camera {SERIALS[0]}"),
    (json.dumps({SERIALS[1]: np.zeros((3, 6)).tolist()}), f"matrix for camera {SERIALS[1]} that has shape (3, 6)"),
    (json.dumps({SERIALS[1]: np.zeros((2, 3)).tolist()}), "has shape (2, 3)"),
    ('{"%s": [[1, 0, 0], [0, NaN, 0], [0, 0, 1]]}' % SERIALS[2], "holds NaN or infinite values"),
    ('{"%s": [[1, 0, 0], [0, 1e999, 0], [0, 0, 1]]}' % SERIALS[2], "holds NaN or infinite values"),
    ("{" + "[" * 40 + "]" * 40 + "}", "nests deeper"),
    ('{"%s": 1, "%s": 2}' % (SERIALS[0], SERIALS[0]), "twice in one object"),
    ("not json", "is not valid JSON"),
])
def test_a_bad_calibration_file_is_refused_in_one_sentence_naming_it(tmp_path: Path, text: str, named: str) -> None:
    path = _write_calibration(tmp_path, text)
    with pytest.raises(InputDataError) as caught:
        read_colour_calibration(path)
    message = str(caught.value)
    assert message.startswith(f"The file {path} ") and named in message
    assert message.endswith("; fetch it again.") and "\n" not in message


def test_a_missing_calibration_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="color_calibration.json is missing"):
        read_colour_calibration(tmp_path / "color_calibration.json")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_the_gpu_equal_to_the_cpu_within_one_level(full_frame: np.ndarray) -> None:
    for terms in (3, 35):
        matrix = near_identity_matrix(terms, seed=terms)
        on_gpu, on_cpu = correct_colour(full_frame, matrix, device="cuda"), correct_colour(full_frame, matrix, "cpu")
        difference = np.abs(on_gpu.astype(np.int16) - on_cpu)
        assert difference.max() <= 1 and np.count_nonzero(difference) <= 1e-4 * difference.size
