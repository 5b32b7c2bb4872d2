"""Camera conventions: OpenCV world-to-camera (stored), OpenCV camera-to-world and OpenGL/NeRF agree on the
pixel of every 3D point, conversions round-trip, and OpenGL's projection matrix maps image edges to NDC +-1."""

from __future__ import annotations

import numpy as np
import pytest

from nersemble_zarr import catalogue
from nersemble_zarr.cameras import (
    OPENCV_TO_OPENGL,
    invert_rigid,
    opencv_camera_to_world,
    opencv_world_to_camera,
    opengl_camera_to_world,
    opengl_projection_matrix,
    opengl_to_opencv_world_to_camera,
    project_opencv,
    project_opencv_camera_to_world,
    project_opengl,
    project_opengl_clip,
)
from nersemble_zarr.synthetic import SyntheticConfig, camera_params, model_to_world, project, tracking
from nersemble_zarr.synthetic.head import ellipsoid_points

CONFIG = SyntheticConfig.tiny()
WIDTH, HEIGHT = CONFIG.frame_size("nvs")


@pytest.fixture(scope="module")
def rig() -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera (16, 4, 4) and intrinsics (16, 3, 3) of the synthetic NVS rig, in catalogue order."""
    params = camera_params(CONFIG, "nvs", 388)
    return (np.stack([params["world_2_cam"][s] for s in catalogue.SERIALS]),
            np.stack([params["intrinsics"][s] for s in catalogue.SERIALS]))


@pytest.fixture(scope="module")
def head_points() -> np.ndarray:
    """Synthetic head surface points placed in the world like a FLAME mesh at frame 2, (200, 3)."""
    params = tracking(CONFIG, "nvs", 388, "GLASSES")
    model = ellipsoid_points(200, np.random.default_rng(0))
    return model_to_world(model, params["rotation_matrices"][2].astype(np.float64),
                          params["translation"][2].astype(np.float64), params["scale"])


def test_conversions_round_trip(rig):
    world_2_cam, _ = rig
    cam_2_world = opencv_camera_to_world(world_2_cam)
    np.testing.assert_allclose(cam_2_world @ world_2_cam, np.broadcast_to(np.eye(4), (16, 4, 4)), atol=1e-12)
    np.testing.assert_allclose(opencv_world_to_camera(cam_2_world), world_2_cam, atol=1e-12)
    gl = opengl_camera_to_world(world_2_cam)
    np.testing.assert_allclose(opengl_to_opencv_world_to_camera(gl), world_2_cam, atol=1e-12)
    np.testing.assert_allclose(gl @ OPENCV_TO_OPENGL, cam_2_world, atol=1e-12)
    np.testing.assert_allclose(invert_rigid(invert_rigid(gl)), gl, atol=1e-12)
    # same camera centre, rotations stay proper rotations
    np.testing.assert_allclose(gl[:, :3, 3], cam_2_world[:, :3, 3])
    np.testing.assert_allclose(np.linalg.det(gl[:, :3, :3]), 1.0, atol=1e-12)


def test_opengl_axes_point_right_up_and_backward(rig):
    """The synthetic rig looks at the head near the origin from about 1 m, with world y up."""
    gl = opengl_camera_to_world(rig[0])
    centres, backward, up = gl[:, :3, 3], gl[:, :3, 2], gl[:, :3, 1]
    away_from_head = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    assert (np.einsum("ij,ij->i", backward, away_from_head) > 0.99).all()
    assert (up[:, 1] > 0.8).all()
    cv = opencv_camera_to_world(rig[0])
    assert (np.einsum("ij,ij->i", cv[:, :3, 2], away_from_head) < -0.99).all()  # OpenCV z looks forward


def test_every_convention_projects_points_onto_the_same_pixels(rig, head_points):
    world_2_cam, intrinsics = rig
    intrinsics = intrinsics.copy()  # off-centre principal points and some skew, so no mistake cancels out
    intrinsics[:, 0, 2], intrinsics[:, 1, 2], intrinsics[:, 0, 1] = 0.6 * WIDTH, 0.3 * HEIGHT, 2.0
    points = head_points[:, None, :]  # broadcast over the 16 cameras
    references = [project(head_points, w2c, k) for w2c, k in zip(world_2_cam, intrinsics)]  # synthetic's own
    reference = np.stack([pixels for pixels, _ in references], axis=1)
    reference_depth = np.stack([depth for _, depth in references], axis=1)
    pixels, depth = project_opencv(points, world_2_cam, intrinsics)
    np.testing.assert_allclose(pixels, reference, atol=1e-9)
    np.testing.assert_allclose(depth, reference_depth, atol=1e-12)
    assert (depth > 0.5).all()
    via_c2w, depth_c2w = project_opencv_camera_to_world(points, opencv_camera_to_world(world_2_cam), intrinsics)
    gl = opengl_camera_to_world(world_2_cam)
    via_gl, depth_gl = project_opengl(points, gl, intrinsics)
    via_clip = project_opengl_clip(points, gl, opengl_projection_matrix(intrinsics, WIDTH, HEIGHT), WIDTH, HEIGHT)
    for other in (via_c2w, via_gl, via_clip):
        np.testing.assert_allclose(other, pixels, atol=1e-7)
    np.testing.assert_allclose(depth_c2w, depth, atol=1e-12)
    np.testing.assert_allclose(depth_gl, depth, atol=1e-12)
    # the classic mistake, flipping the principal point to H - cy for OpenGL, moves points by pixels
    flipped = intrinsics.copy()
    flipped[:, 1, 2] = HEIGHT - flipped[:, 1, 2]
    assert np.abs(project_opengl(points, gl, flipped)[0] - pixels).max() > 0.3 * HEIGHT


def test_opengl_projection_maps_the_image_edges_to_ndc_bounds(rig):
    world_2_cam, intrinsics = rig
    camera, k = world_2_cam[0], intrinsics[0]
    projection = opengl_projection_matrix(k, WIDTH, HEIGHT, near=0.1, far=10.0)
    # points on the rays through the top-left and bottom-right image corners, 1 m in front of the camera
    corners = np.array([[-0.5, -0.5], [WIDTH - 0.5, HEIGHT - 0.5]])
    camera_points = np.c_[(corners - k[:2, 2]) / np.diag(k)[:2], np.ones(2)]  # OpenCV camera frame, z = 1
    world = (invert_rigid(camera) @ np.c_[camera_points, np.ones(2)].T).T[:, :3]
    view = invert_rigid(opengl_camera_to_world(camera))
    clip = (projection @ view @ np.c_[world, np.ones(2)].T).T
    ndc = clip[:, :3] / clip[:, 3:]
    np.testing.assert_allclose(ndc[:, :2], [[-1.0, 1.0], [1.0, -1.0]], atol=1e-9)
    assert (np.abs(ndc[:, 2]) < 1).all()  # between the near and far planes
    np.testing.assert_allclose(project_opengl_clip(world, opengl_camera_to_world(camera), projection, WIDTH, HEIGHT),
                               corners, atol=1e-9)
