"""The SVFR contact sheet: every image of a participant, and the predicted meshes drawn beside them."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from click.testing import CliRunner

from nersemble_zarr import catalogue
from nersemble_zarr import store as store_api
from nersemble_zarr.cli.main import main
from nersemble_zarr.convert import convert
from nersemble_zarr.preview.sheet import GAP, LABEL_HEIGHT, TITLE_HEIGHT
from nersemble_zarr.preview.svfr import MESH_BACKGROUND, load_meshes, svfr_sheet
from nersemble_zarr.submission import export_svfr_submission

KEYS = catalogue.svfr_image_keys()[215]
TETRA = (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32),
         np.array([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]]), np.zeros((7, 3), np.float32))


@pytest.fixture(scope="module")
def svfr_store(svfr_root, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("svfr_preview") / "store.zarr"
    convert(svfr_root, store, benchmarks=("svfr",), participants=(215,))
    return store


@pytest.fixture(scope="module")
def submission(tmp_path_factory) -> Path:
    """A quick-check zip with posed meshes for the first two images of participant 215."""
    path = tmp_path_factory.mktemp("svfr_preview_zip") / "quick.zip"
    export_svfr_submission({"posed": {(215, *key): TETRA for key in KEYS[:2]}}, path, partial=True)
    return path


def test_the_sheet_shows_every_image_and_the_meshes_beside_them(svfr_store, submission) -> None:
    dataset = store_api.svfr_images(store_api.open(svfr_store), 215)
    meshes = load_meshes(submission, 215)
    assert sorted(meshes) == sorted(KEYS[:2]) and np.array_equal(meshes[KEYS[0]][0], TETRA[0])
    pixels, labels = svfr_sheet(dataset, meshes, tile_width=56)  # full-size tiles: 56 x 80
    top, left = TITLE_HEIGHT + LABEL_HEIGHT, GAP
    first_image = dataset["images"][0].values
    assert np.array_equal(pixels[top: top + 80, left: left + 56], first_image)
    drawn = pixels[top: top + 80, left + 56: left + 112]
    assert (drawn != MESH_BACKGROUND).any(axis=2).sum() > 50  # the tetrahedron is drawn
    cell_w = 2 * 56 + GAP
    third = pixels[top: top + 80, left + 2 * cell_w + 56: left + 2 * cell_w + 112]
    assert (third == MESH_BACKGROUND).all()  # no mesh for the third image
    assert sum(label.text == "no mesh" for label in labels) == 11
    assert any(label.text == catalogue.svfr_folder(KEYS[0]) for label in labels)


def test_the_preview_command_writes_the_sheet_and_refuses_sequence_options(svfr_store, submission, tmp_path) -> None:
    output = tmp_path / "sheet.png"
    result = CliRunner().invoke(main, ["preview", str(svfr_store), "-p", "215", "--meshes", str(submission),
                                       "-o", str(output)])
    assert result.exit_code == 0, result.output
    picture = imagecodecs.png_decode(output.read_bytes())
    assert picture.ndim == 3 and picture.shape[2] == 3
    refused = CliRunner().invoke(main, ["preview", str(svfr_store), "-p", "215", "-t", "3", "-o", str(tmp_path / "x.png")])
    assert refused.exit_code == 2 and "no sequence or timestep" in refused.output and not (tmp_path / "x.png").exists()
