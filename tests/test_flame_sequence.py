"""FLAME meshes of sequence Datasets (eager and dask), slicing, a real zarr round trip, and projection."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr

from nersemble_zarr import schema
from nersemble_zarr.errors import FlameError
from nersemble_zarr.flame.projection import project_points
from nersemble_zarr.flame.sequence import faces_dataarray, flame_parameters, sequence_landmarks, sequence_vertices
from test_flame_support import sequence_dataset

N_TIMESTEPS, CHUNK = 24, 8


@pytest.fixture(scope="module")
def eager_ds():
    return sequence_dataset(N_TIMESTEPS, seed=11)


@pytest.fixture(params=["eager", "dask"])
def ds(request, eager_ds):
    """Every case runs on an in-memory Dataset and on the same Dataset chunked with dask."""
    return eager_ds if request.param == "eager" else eager_ds.chunk({schema.TIMESTEP: CHUNK})


@pytest.fixture(scope="module")
def expected(cpu_model, eager_ds):
    """Vertices of every timestep straight from the model (no xarray involved)."""
    return cpu_model.evaluate(flame_parameters(eager_ds), batch_size=CHUNK).vertices


def test_vertices_dataarray_has_the_schema_dims_and_keeps_timesteps(ds, cpu_model, expected):
    vertices = sequence_vertices(ds, cpu_model, batch_size=CHUNK)
    assert vertices.dims == (schema.TIMESTEP, schema.VERTEX, schema.XYZ) and vertices.name == schema.VERTICES
    assert vertices.dtype == np.float32 and vertices.shape == (N_TIMESTEPS, 5023, 3)
    np.testing.assert_array_equal(vertices[schema.TIMESTEP].values, ds[schema.TIMESTEP].values)
    assert (vertices.chunks is not None) == (ds["expression"].chunks is not None)
    np.testing.assert_array_equal(vertices.values, expected)


def test_a_slice_of_timesteps_gives_the_meshes_of_those_timesteps(ds, cpu_model, expected):
    frames = ds[schema.TIMESTEP].values[[3, 4, 5, 9]]
    by_label = sequence_vertices(ds.sel({schema.TIMESTEP: frames}), cpu_model)
    np.testing.assert_array_equal(by_label[schema.TIMESTEP].values, frames)
    np.testing.assert_allclose(by_label.values, expected[[3, 4, 5, 9]], atol=1e-6)
    by_position = sequence_vertices(ds.isel({schema.TIMESTEP: slice(10, 20, 3)}), cpu_model)
    np.testing.assert_array_equal(by_position[schema.TIMESTEP].values, ds[schema.TIMESTEP].values[10:20:3])
    np.testing.assert_allclose(by_position.values, expected[10:20:3], atol=1e-6)


def test_lazy_vertices_equal_eager_and_evaluate_one_task_per_chunk(eager_ds, cpu_model):
    eager = sequence_vertices(eager_ds, cpu_model, batch_size=CHUNK)
    lazy = sequence_vertices(eager_ds.chunk({schema.TIMESTEP: CHUNK}), cpu_model, batch_size=CHUNK)
    assert lazy.data.numblocks == (N_TIMESTEPS // CHUNK, 1, 1)
    with dask.config.set(scheduler="threads"):
        xr.testing.assert_identical(lazy.compute(), eager)
    unaligned = sequence_vertices(eager_ds.chunk({schema.TIMESTEP: 5}), cpu_model)
    xr.testing.assert_allclose(unaligned.compute(), eager, atol=1e-6)


def test_landmarks_dataarray(ds, cpu_model):
    landmarks = sequence_landmarks(ds, cpu_model)
    assert landmarks.dims == (schema.TIMESTEP, schema.LANDMARK, schema.XYZ)
    assert landmarks.shape == (N_TIMESTEPS, 68, 3) and landmarks.dtype == np.float32
    meshes = cpu_model.evaluate(flame_parameters(ds), landmarks=True)
    np.testing.assert_allclose(landmarks.values, meshes.landmarks, atol=1e-6)


def test_opened_from_a_zarr_store_lazily(tmp_path, eager_ds, cpu_model, expected):
    store = tmp_path / "seq.zarr"
    eager_ds.to_zarr(store, group="mono_flame_avatar/393/EXP-1-head", zarr_format=3, consolidated=False)
    opened = xr.open_zarr(store, group="mono_flame_avatar/393/EXP-1-head", chunks={}, consolidated=False)
    vertices = sequence_vertices(opened, cpu_model, batch_size=CHUNK)
    assert vertices.chunks is not None
    np.testing.assert_array_equal(vertices.values, expected)


def test_missing_or_misshapen_tracking_coordinates_are_named(eager_ds, cpu_model):
    with pytest.raises(FlameError, match="no FLAME parameter 'neck'"):
        sequence_vertices(eager_ds.drop_vars("neck"), cpu_model)
    transposed = eager_ds.assign_coords(eyes=eager_ds["eyes"].T)
    with pytest.raises(FlameError, match="'eyes' has dims"):
        sequence_vertices(transposed, cpu_model)


def test_faces_dataarray(cpu_model):
    faces = faces_dataarray(cpu_model)
    assert faces.dims == (schema.FACE, schema.CORNER) and faces.shape == (9976, 3) and faces.dtype == np.int32


def _numpy_projection(points: np.ndarray, world_2_cam: np.ndarray, intrinsics: np.ndarray):
    """Independent reference: homogeneous 4x4 transform, then the pinhole model, camera by camera."""
    pixels, depths = [], []
    for extrinsic, intrinsic in zip(world_2_cam, intrinsics):
        homogeneous = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
        in_camera = (homogeneous @ extrinsic.T)[..., :3]
        u = intrinsic[0, 0] * in_camera[..., 0] / in_camera[..., 2] + intrinsic[0, 2]
        v = intrinsic[1, 1] * in_camera[..., 1] / in_camera[..., 2] + intrinsic[1, 2]
        pixels.append(np.stack([u, v], axis=-1))
        depths.append(in_camera[..., 2])
    return np.stack(pixels), np.stack(depths)


def test_projection_equals_an_independent_numpy_computation(ds, cpu_model):
    vertices = sequence_vertices(ds, cpu_model)
    projected = project_points(vertices, ds[schema.WORLD_2_CAM], ds[schema.INTRINSICS])
    assert projected["pixels"].dims == (schema.SERIAL, schema.TIMESTEP, schema.VERTEX, "uv")
    assert projected["depth"].dims == (schema.SERIAL, schema.TIMESTEP, schema.VERTEX)
    np.testing.assert_array_equal(projected[schema.TIMESTEP].values, ds[schema.TIMESTEP].values)
    assert (projected["pixels"].chunks is not None) == (ds["expression"].chunks is not None)
    pixels, depth = _numpy_projection(
        vertices.values.astype(np.float64), ds[schema.WORLD_2_CAM].values, ds[schema.INTRINSICS].values)
    np.testing.assert_allclose(projected["pixels"].values, pixels, rtol=1e-10)
    np.testing.assert_allclose(projected["depth"].values, depth, rtol=1e-10)
    # The stand-in head sits in front of these cameras and lands near the image centre.
    assert (depth > 0).all() and np.abs(np.median(pixels, axis=(1, 2)) - [256, 250]).max() < 100


def test_projection_into_one_camera_of_landmarks(eager_ds, cpu_model):
    landmarks = sequence_landmarks(eager_ds, cpu_model)
    camera = eager_ds.sel({schema.SERIAL: "222200046"})
    projected = project_points(landmarks, camera[schema.WORLD_2_CAM], camera[schema.INTRINSICS])
    assert projected["pixels"].dims == (schema.TIMESTEP, schema.LANDMARK, "uv")
    pixels, _ = _numpy_projection(
        landmarks.values.astype(np.float64), camera[schema.WORLD_2_CAM].values[None],
        camera[schema.INTRINSICS].values[None])
    np.testing.assert_allclose(projected["pixels"].values, pixels[0], rtol=1e-10)
