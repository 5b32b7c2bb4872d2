"""Batched FLAME evaluation against the official one-timestep path, rotations, batching helpers, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from nersemble_zarr.errors import FlameError
from nersemble_zarr.flame.batching import merge_consecutive, plan_timestep_batches, resolve_device
from nersemble_zarr.flame.lbs import FlameModel
from nersemble_zarr.flame.params import FlameParameters
from nersemble_zarr.flame.rotation import axis_angle_to_matrix, euler_xyz_to_matrix
from test_flame_support import random_parameters, reference_flame, reference_meshes

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def reference(plain_standin_dir):
    """Random parameters and the official path's vertices and landmarks for them."""
    params = random_parameters(12, seed=7)
    vertices, landmarks = reference_meshes(reference_flame(plain_standin_dir), params)
    return params, vertices, landmarks


def test_euler_xyz_matches_scipy_intrinsic_xyz():
    angles = np.random.default_rng(0).uniform(-np.pi, np.pi, size=(200, 3))
    ours = euler_xyz_to_matrix(torch.tensor(angles)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_euler("XYZ", angles).as_matrix(), atol=1e-12)
    assert not np.allclose(ours, Rotation.from_euler("xyz", angles).as_matrix(), atol=1e-3)  # not extrinsic


def test_axis_angle_matches_scipy_rotvec_and_zero_is_identity():
    vectors = np.random.default_rng(1).normal(size=(200, 3))
    vectors[0] = 0.0
    ours = axis_angle_to_matrix(torch.tensor(vectors)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(vectors).as_matrix(), atol=1e-12)
    np.testing.assert_array_equal(ours[0], np.eye(3))


def test_batched_vertices_match_the_official_path(cpu_model, reference):
    params, expected_vertices, _ = reference
    meshes = cpu_model.evaluate(params, batch_size=5)
    assert meshes.vertices.dtype == np.float32 and meshes.vertices.shape == (12, 5023, 3)
    assert meshes.landmarks is None
    np.testing.assert_allclose(meshes.vertices, expected_vertices, rtol=0, atol=1e-5)
    # The poses matter: a mesh without the neck/jaw/eye poses is far from the reference.
    unposed = FlameParameters(**{**params.__dict__, "neck": params.neck * 0, "jaw": params.jaw * 0})
    assert np.abs(cpu_model.evaluate(unposed).vertices - expected_vertices).max() > 1e-3


def test_landmarks_match_the_official_path_including_contour(cpu_model, reference):
    params, _, expected_landmarks = reference
    meshes = cpu_model.evaluate(params, landmarks=True)
    assert cpu_model.n_landmarks == 68 and meshes.landmarks.shape == (12, 68, 3)
    np.testing.assert_allclose(meshes.landmarks, expected_landmarks, rtol=0, atol=1e-5)


def test_contour_landmarks_follow_the_neck_rotation_like_flame(cpu_model, plain_standin_dir):
    """Yaw angles across the whole contour table (both signs, beyond +-39 degrees) pick the same rows."""
    params = random_parameters(9, seed=3)
    yaw = np.deg2rad([-60.0, -39.4, -20.0, -0.4, 0.0, 0.6, 20.0, 39.0, 70.0])
    params = FlameParameters(**{**params.__dict__, "neck": np.stack([0 * yaw, yaw, 0 * yaw], axis=1)})
    _, expected = reference_meshes(reference_flame(plain_standin_dir), params)
    np.testing.assert_allclose(cpu_model.evaluate(params, landmarks=True).landmarks, expected, atol=1e-5)


def test_result_does_not_depend_on_batch_size(cpu_model):
    params = random_parameters(20, seed=2)
    whole = cpu_model.evaluate(params, batch_size=20).vertices
    for batch_size in (1, 3, 8):
        np.testing.assert_allclose(cpu_model.evaluate(params, batch_size=batch_size).vertices, whole, atol=1e-6)


def test_batches_side_by_side_on_threads_equal_one_thread_and_leave_the_callers_threads(cpu_model):
    params = random_parameters(20, seed=5)
    caller_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one_thread = cpu_model.evaluate(params, batch_size=3, landmarks=True)
        torch.set_num_threads(2)
        reported = []
        two_threads = cpu_model.evaluate(params, batch_size=3, landmarks=True, progress=reported.append)
        assert torch.get_num_threads() == 2, "the worker threads' single-thread setting stays in them"
    finally:
        torch.set_num_threads(caller_threads)
    np.testing.assert_array_equal(two_threads.vertices, one_thread.vertices)
    np.testing.assert_array_equal(two_threads.landmarks, one_thread.landmarks)
    assert reported == [3] * 6 + [2]


def test_shape_blend_is_computed_once_and_reused(cpu_model):
    params = random_parameters(6, seed=4)
    identity = cpu_model.identity(params.shape, params.scale)
    reused = cpu_model.evaluate(params, identity=identity).vertices
    np.testing.assert_array_equal(reused, cpu_model.evaluate(params).vertices)
    other = cpu_model.identity(params.shape + 1.0, params.scale)
    assert np.abs(cpu_model.evaluate(params, identity=other).vertices - reused).max() > 1e-4


def test_progress_reports_every_timestep(cpu_model):
    reported = []
    cpu_model.evaluate(random_parameters(10), batch_size=4, progress=reported.append)
    assert reported == [4, 4, 2]


def test_parameters_with_wrong_shapes_are_named():
    params = random_parameters(4)
    with pytest.raises(FlameError, match=r"'eyes' has shape \(4, 3\), expected \(4, 6\)"):
        FlameParameters(**{**params.__dict__, "eyes": params.eyes[:, :3]})
    with pytest.raises(FlameError, match=r"'shape' has shape \(1, 300\)"):
        FlameParameters(**{**params.__dict__, "shape": params.shape[None]})


def test_take_slices_every_timestep_parameter():
    params = random_parameters(10)
    part = params.take(slice(2, 5))
    assert part.n_timesteps == 3
    np.testing.assert_array_equal(part.eyes, params.eyes[2:5])
    np.testing.assert_array_equal(part.shape, params.shape)


def test_plan_timestep_batches_covers_every_timestep_once():
    batches = plan_timestep_batches(10, 4)
    assert batches == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert plan_timestep_batches(0, 4) == []
    with pytest.raises(FlameError, match="Batch size 0"):
        plan_timestep_batches(10, 0)


def test_merge_consecutive_joins_adjacent_chunks_up_to_the_limit():
    chunks = [slice(0, 32), slice(32, 64), slice(64, 96), slice(128, 160), slice(160, 170)]
    assert merge_consecutive(chunks, 64) == [slice(0, 64), slice(64, 96), slice(128, 170)]
    assert merge_consecutive(chunks, 10) == chunks  # a chunk larger than the limit still stands alone


def test_device_names():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(FlameError, match="'tpu'"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(FlameError, match="no CUDA GPU"):
        resolve_device("cuda")


@pytest.mark.gpu
@requires_cuda
def test_gpu_matches_cpu_and_the_official_path(standin_dir, cpu_model, reference):
    params, expected_vertices, expected_landmarks = reference
    gpu_model = FlameModel.load(standin_dir, device="cuda")
    assert gpu_model.device.type == "cuda"
    meshes = gpu_model.evaluate(params, landmarks=True)
    np.testing.assert_allclose(meshes.vertices, expected_vertices, atol=1e-5)
    np.testing.assert_allclose(meshes.landmarks, expected_landmarks, atol=1e-5)
    np.testing.assert_allclose(meshes.vertices, cpu_model.evaluate(params).vertices, atol=1e-5)


@pytest.mark.gpu
@requires_cuda
def test_gpu_batch_size_comes_from_free_memory():
    from nersemble_zarr.flame.batching import MAX_CUDA_BATCH_SIZE, default_batch_size

    assert 1 <= default_batch_size(torch.device("cuda")) <= MAX_CUDA_BATCH_SIZE
