"""Colour correction on reading (``nz.frame(..., colour_correct=True)``, ``FrameDataset(..., colour_correct=True)``)
of a store group holding the ``colour_correction (serial, colour_row, colour_term)`` coordinate: equal to
``correct_colour`` of the stored frame and to the official ``correct_color`` within one level, at full resolution
and at a level (corrected after the stored area-averaging); refused in one sentence where it cannot apply."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from nersemble_data.util.color_correction import correct_color

import nersemble_zarr.store as nz
from nersemble_zarr import catalogue, schema
from nersemble_zarr.colour import correct_colour
from nersemble_zarr.errors import ConfigError, StoreError
from nersemble_zarr.levels import downsample
from nersemble_zarr.storage import consolidate, written_cameras
from nersemble_zarr.synthetic.colour import near_identity_matrix
from nersemble_zarr.torch_dataset import FrameDataset, make_dataloader

PARTICIPANT = 388
SEQUENCE = catalogue.NVS_SEQUENCES[PARTICIPANT]
TERMS = 10
GROUPS = [schema.sequence_group("nvs", PARTICIPANT, SEQUENCE), schema.level_group(2, "nvs", PARTICIPANT, SEQUENCE)]


def write_colour_correction(store: Path, group: str, matrices: np.ndarray, corrected: bool | None = None) -> None:
    """Add the coordinate (listed in the group's ``coordinates`` attribute, as xarray writes one) and the group
    attribute as a writer of the store would, then consolidate."""
    root = zarr.open_group(store, path=group, mode="r+")
    root.create_array(schema.COLOUR_CORRECTION, data=matrices, overwrite=True,
                      dimension_names=(schema.SERIAL, schema.COLOUR_ROW, schema.COLOUR_TERM))
    coordinates = set(root.attrs.get("coordinates", "").split()) | {schema.COLOUR_CORRECTION}
    root.attrs["coordinates"] = " ".join(sorted(coordinates))
    if corrected is not None:
        root.attrs[schema.COLOUR_CORRECTED_ATTR] = corrected
    consolidate(store)


@pytest.fixture(scope="module")
def matrices(converted: Path) -> np.ndarray:
    serials = nz.sequence(nz.open(converted), "nvs", PARTICIPANT)[schema.SERIAL].values
    return np.stack([near_identity_matrix(TERMS, seed=index) for index in range(len(serials))])


@pytest.fixture(scope="module")
def store(converted: Path, matrices: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the converted store with level 2 of NVS 388 and the coordinate in both groups."""
    path = tmp_path_factory.mktemp("colour_store") / "store.zarr"
    shutil.copytree(converted, path)
    downsample(path, [2], participants=[PARTICIPANT], workers=1)
    for group in GROUPS:
        write_colour_correction(path, group, matrices)
    return path


def test_the_coordinate_is_read_as_a_coordinate(store: Path, matrices: np.ndarray) -> None:
    dataset = nz.sequence(nz.open(store), "nvs", PARTICIPANT)
    assert dataset[schema.COLOUR_CORRECTION].dims == (schema.SERIAL, schema.COLOUR_ROW, schema.COLOUR_TERM)
    assert schema.COLOUR_CORRECTION in dataset.coords
    np.testing.assert_array_equal(dataset[schema.COLOUR_CORRECTION].values, matrices)


@pytest.mark.parametrize("level", [1, 2])
def test_frame_colour_correct_equals_correct_colour_and_the_official(store: Path, matrices: np.ndarray,
                                                                     level: int) -> None:
    tree = nz.open(store, dask=False)
    dataset = nz.sequence(tree, "nvs", PARTICIPANT) if level == 1 else tree[GROUPS[1]].to_dataset()
    serials = [str(serial) for serial in dataset[schema.SERIAL].values]
    timesteps = [int(t) for t in dataset[schema.TIMESTEP].values]
    written = written_cameras(dataset)
    checked = 0
    for index in np.flatnonzero(written)[:3]:
        for timestep in (timesteps[0], timesteps[-1]):
            stored = nz.frame(dataset, serials[index], timestep)
            corrected = nz.frame(dataset, serials[index], timestep, colour_correct=True)
            assert corrected.shape == stored.shape and corrected.dtype == np.uint8
            np.testing.assert_array_equal(corrected, correct_colour(stored, matrices[index]))
            official = correct_color(stored, matrices[index])  # the official order: resized first, then corrected
            assert np.abs(corrected.astype(int) - official).max() <= 1
            assert np.count_nonzero(corrected != stored) > 0.1 * stored.size  # the matrix did change the frame
            checked += 1
    assert checked == 6


def test_frame_dataset_and_dataloader_correct_each_image(store: Path, matrices: np.ndarray) -> None:
    for level in (1, 2):
        plain = FrameDataset(store, "nvs", participants=[PARTICIPANT], level=level, dtype=torch.uint8)
        corrected = FrameDataset(store, "nvs", participants=[PARTICIPANT], level=level, dtype=torch.uint8,
                                 colour_correct=True)
        assert len(plain) == len(corrected) > 0
        for item in (0, len(plain) - 1):
            expected, got = plain[item], corrected[item]
            serial_index = int(got["serial_index"])
            image = expected["image"].permute(1, 2, 0).numpy()
            np.testing.assert_array_equal(got["image"].permute(1, 2, 0).numpy(),
                                          correct_colour(image, matrices[serial_index]))
            np.testing.assert_array_equal(got["alpha"], expected["alpha"])  # alpha is never corrected
    loader = make_dataloader(store, "nvs", participants=[PARTICIPANT], batch_size=2, shuffle=False,
                             colour_correct=True)
    dataset = loader.dataset
    batch = next(iter(loader))
    for row in range(2):
        serial, timestep = dataset.item_key(row)[1:]
        expected = nz.frame(nz.sequence(nz.open(store), "nvs", PARTICIPANT), serial, timestep, colour_correct=True)
        image = (batch["image"][row] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(image, expected)


def test_a_group_without_matrices_is_refused_in_one_sentence(converted: Path) -> None:
    dataset = nz.sequence(nz.open(converted), "nvs", PARTICIPANT)
    serial = str(dataset[schema.SERIAL].values[0])
    with pytest.raises(ConfigError) as caught:
        nz.frame(dataset, serial, int(dataset[schema.TIMESTEP].values[0]), colour_correct=True)
    message = str(caught.value)
    assert message == (f"Store group {GROUPS[0]} holds no colour correction matrices (no colour_correction "
                       "coordinate), so its frames cannot be colour-corrected.")
    with pytest.raises(ConfigError, match=f"Store group {GROUPS[0]} holds no colour correction matrices"):
        FrameDataset(converted, "nvs", participants=[PARTICIPANT], colour_correct=True)


def test_a_corrected_group_is_refused_in_one_sentence(store: Path, matrices: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "corrected.zarr"
    shutil.copytree(store, path)
    write_colour_correction(path, GROUPS[0], matrices, corrected=True)
    dataset = nz.sequence(nz.open(path), "nvs", PARTICIPANT)
    serial, timestep = str(dataset[schema.SERIAL].values[0]), int(dataset[schema.TIMESTEP].values[0])
    nz.frame(dataset, serial, timestep)  # reading it as stored is fine
    expected = (f"The frames of store group {GROUPS[0]} are colour-corrected already; read them without "
                "colour_correct.")
    with pytest.raises(ConfigError) as caught:
        nz.frame(dataset, serial, timestep, colour_correct=True)
    assert str(caught.value) == expected
    with pytest.raises(ConfigError) as caught:
        FrameDataset(path, "nvs", participants=[PARTICIPANT], colour_correct=True)
    assert str(caught.value) == expected


def test_an_unusable_stored_matrix_is_named(store: Path, matrices: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "bad.zarr"
    shutil.copytree(store, path)
    bad = matrices.copy()
    bad[1, 2, 3] = np.nan
    write_colour_correction(path, GROUPS[0], bad)
    dataset = nz.sequence(nz.open(path), "nvs", PARTICIPANT)
    serial = str(dataset[schema.SERIAL].values[1])
    with pytest.raises(StoreError) as caught:
        nz.frame(dataset, serial, int(dataset[schema.TIMESTEP].values[0]), colour_correct=True)
    assert str(caught.value) == (f"The colour correction matrix of camera {serial} in store group {GROUPS[0]} holds "
                                 "NaN or infinite values.")


def test_a_converted_dataset_group_is_corrected_on_reading_as_the_official(dataset_store: Path,
                                                                            synthetic_dataset: Path) -> None:
    """``convert -b dataset`` without --colour-correct: the stored matrices are the kit's, and the frame read with
    colour_correct=True is the official ``correct_color`` of the stored frame; its corrected level-4 group refuses."""
    from nersemble_data.data.nersemble_data import NeRSembleParticipantDataManager

    tree = nz.open(dataset_store, dask=False)
    dataset = tree["dataset/17/EXP-1-head"].to_dataset()
    official = NeRSembleParticipantDataManager(str(synthetic_dataset), 17).load_color_calibration()
    serials = [str(serial) for serial in dataset[schema.SERIAL].values]
    timestep = int(dataset[schema.TIMESTEP].values[-1])
    for index, serial in enumerate(serials):
        np.testing.assert_array_equal(dataset[schema.COLOUR_CORRECTION].values[index], official[serial])
        stored = nz.frame(dataset, serial, timestep)
        corrected = nz.frame(dataset, serial, timestep, colour_correct=True)
        assert np.abs(corrected.astype(int) - correct_color(stored, official[serial])).max() <= 1
    items = FrameDataset(dataset_store, "dataset", participants=[17], sequences=["EXP-1-head"], dtype=torch.uint8,
                         colour_correct=True)
    group, serial, timestep = items.item_key(0)
    expected = nz.frame(tree[group].to_dataset(), serial, timestep, colour_correct=True)
    np.testing.assert_array_equal(items[0]["image"].permute(1, 2, 0).numpy(), expected)
    level_4 = tree["level_4/dataset/17/EXP-1-head"].to_dataset()
    with pytest.raises(ConfigError, match="The frames of store group level_4/dataset/17/EXP-1-head are "
                                          "colour-corrected already"):
        nz.frame(level_4, serials[0], int(level_4[schema.TIMESTEP].values[0]), colour_correct=True)
