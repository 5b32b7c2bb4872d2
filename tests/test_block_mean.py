"""The compiled area average (levels.resample.block_mean) against a plain numpy box mean, on random frames whose
sizes the factor does not divide, in every memory layout a decoder or a caller hands it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from nersemble_zarr.levels.resample import block_mean


def numpy_box_mean(frames: np.ndarray, factor: int) -> np.ndarray:
    """The reference: crop to whole boxes, sum each box in int64, round halves up."""
    count, height, width = frames.shape[0], frames.shape[1] // factor, frames.shape[2] // factor
    cropped = frames[:, : height * factor, : width * factor].astype(np.int64)
    sums = cropped.reshape(count, height, factor, width, factor, *frames.shape[3:]).sum(axis=(2, 4))
    return ((sums + factor * factor // 2) // (factor * factor)).astype(np.uint8)


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("shape", [(2, 37, 51, 3), (1, 45, 29), (1, 19, 23, 4)])
def test_block_mean_equals_the_numpy_box_mean(shape, factor):
    frames = np.random.default_rng(factor).integers(0, 256, shape, dtype=np.uint8)
    expected = numpy_box_mean(frames, factor)
    np.testing.assert_array_equal(block_mean(frames, factor), expected)


@pytest.mark.parametrize("shape", [(2, 37, 51, 3), (1, 45, 29)])
def test_block_mean_writes_into_a_buffer_of_its_result_and_refuses_another(shape):
    frames = np.random.default_rng(7).integers(0, 256, shape, dtype=np.uint8)
    expected = numpy_box_mean(frames, 4)
    buffer = np.zeros_like(expected)
    assert block_mean(frames, 4, out=buffer) is buffer
    np.testing.assert_array_equal(buffer, expected)
    for wrong in (np.zeros(expected.shape[:-1] + (expected.shape[-1] + 1,), np.uint8), buffer.astype(np.uint16),
                  np.zeros(expected.shape[::-1], np.uint8).T):
        with pytest.raises(ValueError, match="block_mean writes a C-contiguous uint8 array"):
            block_mean(frames, 4, out=wrong)


def test_block_mean_rounds_halves_up():
    """Means 0.5 and 2.5 (halves) become 1 and 3, not 0 and 2 (truncation, or rounding halves to even); 0.25 and
    0.75 become 0 and 1."""
    boxes = np.array([[[1, 0], [0, 1]], [[3, 2], [2, 3]], [[1, 0], [0, 0]], [[1, 1], [1, 0]]], dtype=np.uint8)
    frames = np.repeat(np.concatenate(list(boxes), axis=1)[None, ..., None], 3, axis=3)  # (1, 2, 8, 3)
    np.testing.assert_array_equal(block_mean(frames, 2)[0, 0, :, 0], [1, 3, 0, 1])


def test_block_mean_reads_any_layout_without_changing_it():
    """Padded rows (a decoder's line size), a reversed axis, every other column, a read-only array."""
    rng = np.random.default_rng(7)
    padded = rng.integers(0, 256, (1, 33, 64, 3), dtype=np.uint8)[:, :, :50]  # rows 64 pixels apart
    padded.flags.writeable = False
    for frames in (padded, padded[:, ::-1], padded[:, :, ::2], padded[0, :, :, 1][None]):
        before = frames.copy()
        np.testing.assert_array_equal(block_mean(frames, 4), numpy_box_mean(frames, 4))
        np.testing.assert_array_equal(frames, before)


def test_block_mean_of_frames_smaller_than_a_box_is_empty():
    assert block_mean(np.zeros((2, 3, 5, 3), dtype=np.uint8), 4).shape == (2, 0, 1, 3)
    assert block_mean(np.zeros((2, 3, 3, 3), dtype=np.uint8), 8).shape == (2, 0, 0, 3)


def test_block_mean_runs_in_threads_at_once():
    """The kernel releases the GIL and keeps no state between calls: threads averaging different frames at the
    same time each get their own exact result."""
    rng = np.random.default_rng(3)
    inputs = [rng.integers(0, 256, (1, 41, 57, 3), dtype=np.uint8) for _ in range(8)]
    results: dict[int, np.ndarray] = {}

    def average(index: int) -> None:
        for _ in range(5):
            results[index] = block_mean(inputs[index], 4)

    threads = [threading.Thread(target=average, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, frames in enumerate(inputs):
        np.testing.assert_array_equal(results[index], numpy_box_mean(frames, 4))
