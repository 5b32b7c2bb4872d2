"""SVFR images in the store: one group per participant, exact pixels, resume, differing sizes, bad PNGs."""

from __future__ import annotations

import shutil
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from click.testing import CliRunner

from nersemble_zarr import catalogue, schema, storage
from nersemble_zarr import store as store_api
from nersemble_zarr.cli.main import main
from nersemble_zarr.convert import convert
from nersemble_zarr.errors import InputDataError

KEYS_215 = catalogue.svfr_image_keys()[215]


def png(root: Path, participant: int, key: catalogue.ImageKey) -> np.ndarray:
    return imagecodecs.png_decode((root / "svfr" / catalogue.svfr_image_path(participant, key)).read_bytes())


@pytest.fixture
def source(svfr_root: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic SVFR folder, safe to change."""
    return Path(shutil.copytree(svfr_root, tmp_path / "fetched"))


def test_store_pixels_equal_the_pngs_and_info_shows_the_groups(svfr_root, tmp_path) -> None:
    store = tmp_path / "store.zarr"
    summary = convert(svfr_root, store)
    assert summary.images_written == 33 and summary.images_skipped == 0
    tree = store_api.open(store)
    for participant in (17, 215):
        dataset = store_api.svfr_images(tree, participant)
        keys = catalogue.svfr_image_keys()[participant]
        assert dataset[schema.IMAGES].dims == (schema.IMAGE, schema.Y, schema.X, schema.CHANNEL)
        assert dataset[schema.IMAGES].dtype == np.uint8
        assert list(zip(dataset["sequence"].values, dataset["timestep"].values.tolist(), dataset["serial"].values)) == [
            tuple(k) for k in keys
        ]
        assert (dataset.attrs["height"], dataset.attrs["width"]) == (80, 56) and dataset.attrs["same_size"]
        for index, key in enumerate(keys):
            assert np.array_equal(dataset[schema.IMAGES][index].values, png(svfr_root, participant, key))
            assert np.array_equal(store_api.svfr_image(dataset, *key), png(svfr_root, participant, key))
    assert storage.open_group(store).attrs[schema.BENCHMARKS_ATTR] == ["svfr"]
    result = CliRunner().invoke(main, ["info", str(store)])
    assert result.exit_code == 0 and "/svfr/17  [complete]" in result.output and "/svfr/215  [complete]" in result.output
    assert "every image of participant(s) 60, 71" in result.output  # the catalogue's participants not converted are listed


def test_a_rerun_writes_only_the_images_not_flagged(svfr_root, tmp_path) -> None:
    store = tmp_path / "store.zarr"
    convert(svfr_root, store)
    group = schema.svfr_group(215)
    flags = storage.open_array(store, f"{group}/images_converted", mode="r+")
    flags[[2, 7]] = False  # as if a run had died before these two
    storage.open_array(store, f"{group}/images", mode="r+")[[2, 7]] = 0
    summary = convert(svfr_root, store)
    assert (summary.images_written, summary.images_skipped) == (2, 31)
    dataset = store_api.svfr_images(store_api.open(store), 215)
    for index in (2, 7):
        assert np.array_equal(dataset[schema.IMAGES][index].values, png(svfr_root, 215, KEYS_215[index]))


def test_images_of_differing_sizes_are_padded_and_cropped_back(source, tmp_path) -> None:
    small = png(source, 215, KEYS_215[4])[:50, :40]
    (source / "svfr" / catalogue.svfr_image_path(215, KEYS_215[4])).write_bytes(imagecodecs.png_encode(small))
    store = tmp_path / "store.zarr"
    convert(source, store, benchmarks=("svfr",), participants=(215,))
    dataset = store_api.svfr_images(store_api.open(store), 215)
    assert (dataset.attrs["height"], dataset.attrs["width"]) == (80, 56) and not dataset.attrs["same_size"]
    assert (int(dataset["image_height"][4]), int(dataset["image_width"][4])) == (50, 40)
    assert np.array_equal(store_api.svfr_image(dataset, *KEYS_215[4]), small)
    stored = dataset[schema.IMAGES][4].values
    assert not stored[50:].any() and not stored[:, 40:].any()


def test_a_truncated_png_is_named_and_leaves_no_store(source, tmp_path) -> None:
    path = source / "svfr" / catalogue.svfr_image_path(17, catalogue.svfr_image_keys()[17][3])
    path.write_bytes(path.read_bytes()[:200])
    store = tmp_path / "store.zarr"
    result = CliRunner().invoke(main, ["convert", str(source), str(store)])
    assert result.exit_code != 0 and str(path) in result.output and "Traceback" not in result.output
    assert not store.exists()
    path.unlink()
    with pytest.raises(InputDataError, match="is missing"):
        convert(source, store)
