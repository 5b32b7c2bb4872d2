"""End to end: synthetic benchmark -> convert -> meshes (stand-in model) -> projection onto the rendered subject."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import xarray as xr
from click.testing import CliRunner

from nersemble_zarr import catalogue, schema
from nersemble_zarr import store as store_module
from nersemble_zarr.cli.main import main
from nersemble_zarr.convert import convert
from nersemble_zarr.flame.projection import project_points

TRAIN = ("mono_flame_avatar", 393, "EXP-1-head")


@pytest.fixture(scope="module")
def meshed_store(synthetic_root, standin_dir, tmp_path_factory):
    """The tiny synthetic mono benchmark converted, with stand-in meshes written by the CLI."""
    store = tmp_path_factory.mktemp("flame_pipeline") / "bench.zarr"
    convert(synthetic_root, store, benchmarks=("mono_flame_avatar",), workers=1)
    result = CliRunner().invoke(main, ["meshes", str(store), "--flame-dir", str(standin_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return store


def _fraction_on_subject(ds: xr.Dataset, vertices: xr.DataArray) -> float:
    """Share of projected vertices (train camera, every timestep) on the subject: alpha > 127, grown by one
    pixel (frames are 52 pixels wide, and vertices on the silhouette round to either side of it)."""
    camera = ds.sel({schema.SERIAL: catalogue.MONO_TRAIN_SERIAL})
    projected = project_points(vertices, camera[schema.WORLD_2_CAM], camera[schema.INTRINSICS])
    pixels = np.rint(projected["pixels"].values).astype(int)  # (timestep, vertex, uv)
    subject = np.stack([scipy.ndimage.binary_dilation(frame > 127) for frame in camera[schema.ALPHA].values])
    height, width = subject.shape[1:]
    u, v = pixels[..., 0], pixels[..., 1]
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    timestep = np.broadcast_to(np.arange(len(subject))[:, None], u.shape)
    on_subject = np.zeros(u.shape, dtype=bool)
    on_subject[inside] = subject[timestep[inside], v[inside], u[inside]]
    return float(on_subject.mean())


def test_stand_in_meshes_land_on_the_rendered_synthetic_subject(meshed_store):
    tree = store_module.open(meshed_store)
    ds = store_module.sequence(tree, *TRAIN)
    vertices = ds[schema.VERTICES].load()
    assert vertices.sizes[schema.TIMESTEP] == ds.sizes[schema.TIMESTEP] and not np.isnan(vertices.values).any()
    assert _fraction_on_subject(ds, vertices) > 0.93
    shifted = vertices + xr.DataArray([0.05, 0.0, 0.0], dims=schema.XYZ)  # the same meshes 5 cm aside
    assert _fraction_on_subject(ds, shifted) < 0.75


def test_test_sequences_without_video_get_meshes_too(meshed_store):
    tree = store_module.open(meshed_store)
    test_sequence = store_module.sequence(tree, "mono_flame_avatar", 393, "FREE")
    assert test_sequence.attrs["vertices_complete"] is True
    assert test_sequence[schema.LANDMARKS].shape == (test_sequence.sizes[schema.TIMESTEP], 68, 3)
