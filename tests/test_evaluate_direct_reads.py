"""evaluate plans from zarr and reads a predictions store one frame at a time by the direct chunk reader: the
same sequences, cameras, frames and errors as the xarray view of the same stores."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import zarr

from helpers import predictions_dataset, run_cli, write_predictions
from nersemble_zarr import schema, storage
from nersemble_zarr import store as store_module
from nersemble_zarr.evaluation.ground_truth import stored_sequences
from nersemble_zarr.evaluation.plan import plan_evaluation
from nersemble_zarr.submission.sources import ArrayVideo, StoredVideo
from test_evaluate import NVS, NVS_CAMERAS, nvs_predictions, write_prediction_store  # noqa: F401 (a fixture)

NO_EXTRAS = ("--no-lpips", "--no-jod", "-j", "1")


def write_frame_chunked(path, predictions: dict):
    """A predictions store whose images are chunked one frame per chunk (what the direct reader reads)."""
    serials = [serial for _, _, serial in predictions]
    images = np.stack([predictions[(*NVS, serial)] for serial in serials])
    group = schema.sequence_group("nvs", *NVS)
    return write_predictions(path, {group: predictions_dataset(serials, images)},
                             encoding={f"/{group}": {schema.IMAGES: {"chunks": (1, 1, *images.shape[2:])}}})


@pytest.mark.parametrize("benchmark", ["nvs", "mono_flame_avatar"])
def test_the_plan_read_from_zarr_holds_what_the_xarray_view_holds(converted, benchmark):
    tree = store_module.open(converted, dask=False)
    stored = stored_sequences(str(converted), benchmark)
    with_frames = [(p, s) for b, p, s in store_module.sequence_keys(converted)
                   if b == benchmark and schema.IMAGES in store_module.sequence(tree, b, p, s)]
    assert stored and sorted(stored) == sorted(with_frames)
    for (participant, sequence), found in stored.items():
        dataset = store_module.sequence(tree, benchmark, participant, sequence)
        assert found.serials == tuple(str(s) for s in dataset[schema.SERIAL].values)
        np.testing.assert_array_equal(found.timesteps, dataset[schema.TIMESTEP].values)
        assert found.written == tuple(bool(w) for w in storage.written_cameras(dataset))
        assert found.splits == tuple(str(s) for s in dataset[schema.SPLIT].values)
        assert (found.height, found.width) == (dataset.sizes[schema.Y], dataset.sizes[schema.X])
        assert found.has_alpha == (schema.ALPHA in dataset)


def test_a_predictions_store_is_read_one_frame_at_a_time_as_stored(converted, nvs_predictions, tmp_path):
    path = write_frame_chunked(tmp_path / "pred.zarr", nvs_predictions)
    tasks = plan_evaluation(path, converted, "nvs")
    assert sorted(task.serial for task in tasks) == sorted(NVS_CAMERAS)
    for task in tasks:
        assert isinstance(task.source, StoredVideo)
        blocks = list(task.source.blocks())
        assert all(block.shape[0] == 1 for block in blocks)
        np.testing.assert_array_equal(np.concatenate(blocks), nvs_predictions[(*NVS, task.serial)])


@pytest.mark.parametrize("layout", ["float frames", "chunks of several frames"])
def test_a_predictions_store_of_another_layout_is_read_through_xarray(converted, nvs_predictions, tmp_path, layout):
    if layout == "float frames":
        predictions = {key: frames / 255.0 for key, frames in nvs_predictions.items()}
        path = write_frame_chunked(tmp_path / "pred.zarr", predictions)
    else:
        predictions = nvs_predictions
        path = write_prediction_store(tmp_path / "pred.zarr", predictions)  # xarray's chunks: a camera each
    tasks = plan_evaluation(path, converted, "nvs")
    assert tasks and all(isinstance(task.source, ArrayVideo) for task in tasks)
    for task in tasks:
        np.testing.assert_array_equal(np.concatenate(list(task.source.blocks())), predictions[(*NVS, task.serial)])


def test_a_corrupt_chunk_of_a_predictions_store_is_one_sentence(converted, nvs_predictions, tmp_path):
    path = write_frame_chunked(tmp_path / "pred.zarr", nvs_predictions)
    array = zarr.open_array(path, path=f"{schema.sequence_group('nvs', *NVS)}/{schema.IMAGES}", mode="r")
    chunk = path / array.path / array.metadata.encode_chunk_key((0, 1, 0, 0, 0))
    os.truncate(chunk, chunk.stat().st_size // 2)
    result = run_cli("evaluate", path, "--store", converted, "-b", "nvs", *NO_EXTRAS, exit_code=1)
    assert f"Frame (0, 1) of {path / array.path} could not be decompressed" in result.output, result.output
    assert result.output.count("\n") == 1, result.output


def test_a_corrupt_chunk_read_through_xarray_is_one_sentence(converted, nvs_predictions, tmp_path):
    path = write_prediction_store(tmp_path / "pred.zarr", nvs_predictions)  # a camera per chunk: xarray reads it
    array = zarr.open_array(path, path=f"{schema.sequence_group('nvs', *NVS)}/{schema.IMAGES}", mode="r")
    chunk = path / array.path / array.metadata.encode_chunk_key((0, 0, 0, 0, 0))
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    result = run_cli("evaluate", path, "--store", converted, "-b", "nvs", *NO_EXTRAS, exit_code=1)
    assert "could not be read (" in result.output and NVS_CAMERAS[0] in result.output, result.output
    assert result.output.count("\n") == 1, result.output


@pytest.mark.parametrize("group, name, value", [("", schema.FORMAT_ATTR, [1]), ("nvs/388/GLASSES", schema.HEIGHT_ATTR, "160")])
def test_a_damaged_attribute_of_the_store_is_the_sentence_nz_open_gives(converted, nvs_predictions, tmp_path,
                                                                        group, name, value):
    predictions = write_prediction_store(tmp_path / "pred.zarr", nvs_predictions)
    store = tmp_path / "copy.zarr"
    shutil.copytree(converted, store)
    zarr.open_group(store, path=group, mode="r+", use_consolidated=False).attrs[name] = value
    zarr.consolidate_metadata(store)
    with pytest.raises(Exception) as opened:
        store_module.open(store)
    result = run_cli("evaluate", predictions, "--store", store, "-b", "nvs", *NO_EXTRAS, exit_code=1)
    assert str(opened.value) in result.output, result.output
