"""Camera conventions: the store's OpenCV world-to-camera, OpenCV camera-to-world, and OpenGL/NeRF.

Conventions (docs/conventions.md has the derivations):

* **OpenCV** (stored): camera axes x right, y down, z forward (the viewing direction). Pixel coordinates
  (u, v) = (column, row) with pixel centres at integer coordinates: pixel (0, 0) covers
  [-0.5, 0.5] x [-0.5, 0.5]. ``u = fx * x / z + s * y / z + cx``, ``v = fy * y / z + cy``.
* **OpenGL / NeRF**: camera axes x right, y up, z backward (the camera looks along -z), poses stored
  camera-to-world. The intrinsics (fx, fy, cx, cy) are the same numbers: the image still has its origin at
  the top-left and rows going down, so ``cy`` is NOT flipped to ``H - cy``; only the camera axes change.
  A rasteriser's projection matrix is where the flip happens (``opengl_projection_matrix``).

All functions broadcast over leading dimensions: poses (..., 4, 4), intrinsics (..., 3, 3), points (..., 3).
"""

from __future__ import annotations

import numpy as np

from .errors import StoreError

# Camera axes of OpenGL expressed in OpenCV's (and back): flip y and z.
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


def invert_rigid(pose: np.ndarray) -> np.ndarray:
    """Inverse of rigid 4x4 transforms (..., 4, 4): [R | t]^-1 = [R^T | -R^T t]."""
    pose = np.asarray(pose, dtype=np.float64)
    rotation_t = np.swapaxes(pose[..., :3, :3], -1, -2)
    inverse = np.zeros_like(pose)
    inverse[..., :3, :3] = rotation_t
    inverse[..., :3, 3] = -np.einsum("...ij,...j->...i", rotation_t, pose[..., :3, 3])
    inverse[..., 3, 3] = 1.0
    return inverse


def opencv_camera_to_world(world_2_cam: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world poses (camera position in the last column) of stored world-to-camera matrices."""
    return invert_rigid(world_2_cam)


def opencv_world_to_camera(cam_2_world: np.ndarray) -> np.ndarray:
    """OpenCV world-to-camera matrices (the store's convention) of OpenCV camera-to-world poses."""
    return invert_rigid(cam_2_world)


def opengl_camera_to_world(world_2_cam: np.ndarray) -> np.ndarray:
    """OpenGL/NeRF camera-to-world poses (x right, y up, z backward) of stored OpenCV world-to-camera matrices.

    This is the ``transform_matrix`` of a NeRF ``transforms.json``.
    """
    return opencv_camera_to_world(world_2_cam) @ OPENCV_TO_OPENGL


def opengl_to_opencv_world_to_camera(cam_2_world_gl: np.ndarray) -> np.ndarray:
    """Stored-convention OpenCV world-to-camera matrices of OpenGL/NeRF camera-to-world poses."""
    return invert_rigid(np.asarray(cam_2_world_gl, dtype=np.float64) @ OPENCV_TO_OPENGL)


def _pixels(camera_cv: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    homogeneous = np.einsum("...ij,...j->...i", np.asarray(intrinsics, dtype=np.float64), camera_cv)
    return homogeneous[..., :2] / homogeneous[..., 2:3]


def _transform(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    pose = np.asarray(pose, dtype=np.float64)
    return np.einsum("...ij,...j->...i", pose[..., :3, :3], np.asarray(points, dtype=np.float64)) + pose[..., :3, 3]


def project_opencv(
    points: np.ndarray, world_2_cam: np.ndarray, intrinsics: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (..., 2) (OpenCV, centres at integers) and depth (...) of world points, stored convention."""
    camera = _transform(world_2_cam, points)
    return _pixels(camera, intrinsics), camera[..., 2]


def project_opencv_camera_to_world(
    points: np.ndarray, cam_2_world: np.ndarray, intrinsics: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels and depth of world points seen by OpenCV camera-to-world poses (same pixels as project_opencv)."""
    return project_opencv(points, invert_rigid(cam_2_world), intrinsics)


def project_opengl(
    points: np.ndarray, cam_2_world_gl: np.ndarray, intrinsics: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (OpenCV pixel coordinates) and depth of world points seen by OpenGL/NeRF camera-to-world poses.

    In OpenGL camera coordinates (x, y, z) a point in front of the camera has z < 0; its pixel is
    ``u = cx + fx * x / -z``, ``v = cy - fy * y / -z`` (y up in the camera, rows down in the image).
    Depth is ``-z``.
    """
    camera_gl = _transform(invert_rigid(cam_2_world_gl), points)
    camera_cv = camera_gl * np.array([1.0, -1.0, -1.0])
    return _pixels(camera_cv, intrinsics), camera_cv[..., 2]


def opengl_projection_matrix(
    intrinsics: np.ndarray, width: int, height: int, near: float = 0.01, far: float = 100.0
) -> np.ndarray:
    """OpenGL projection matrices (..., 4, 4) for OpenCV intrinsics of a ``width`` x ``height`` image.

    Maps OpenGL camera coordinates to clip space so that, after the perspective divide, NDC x = -1 / +1 is
    the left / right edge of the image and NDC y = +1 / -1 its top / bottom edge (OpenGL's window origin is
    the bottom-left, so read-back framebuffers are flipped vertically to become images). Pixel centres:
    OpenCV's u sits at window x = u + 0.5, its row v at window y = height - (v + 0.5).
    """
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    fx, skew, cx = intrinsics[..., 0, 0], intrinsics[..., 0, 1], intrinsics[..., 0, 2]
    fy, cy = intrinsics[..., 1, 1], intrinsics[..., 1, 2]
    projection = np.zeros(intrinsics.shape[:-2] + (4, 4))
    projection[..., 0, 0] = 2 * fx / width
    projection[..., 0, 1] = -2 * skew / width
    projection[..., 0, 2] = 1 - (2 * cx + 1) / width
    projection[..., 1, 1] = 2 * fy / height
    projection[..., 1, 2] = (2 * cy + 1) / height - 1
    projection[..., 2, 2] = -(far + near) / (far - near)
    projection[..., 2, 3] = -2 * far * near / (far - near)
    projection[..., 3, 2] = -1.0
    return projection


def project_opengl_clip(
    points: np.ndarray, cam_2_world_gl: np.ndarray, projection: np.ndarray, width: int, height: int
) -> np.ndarray:
    """OpenCV pixel coordinates (..., 2) of world points through the full OpenGL pipeline
    (view matrix, ``projection`` from opengl_projection_matrix, perspective divide, viewport)."""
    camera_gl = _transform(invert_rigid(cam_2_world_gl), points)
    homogeneous = np.concatenate([camera_gl, np.ones(camera_gl.shape[:-1] + (1,))], axis=-1)
    clip = np.einsum("...ij,...j->...i", np.asarray(projection, dtype=np.float64), homogeneous)
    ndc = clip[..., :2] / clip[..., 3:4]
    u = (ndc[..., 0] + 1) * width / 2 - 0.5
    v = (1 - ndc[..., 1]) * height / 2 - 0.5
    return np.stack([u, v], axis=-1)


# ---------------------------------------------------------------- validation (one rule for every reader and writer)
MAX_CAMERA_DISTANCE = 1e4  # metres from the world origin (the cameras sit about a metre from the head; the vhap
# export divides positions by the tracking's scale)
MAX_FOCAL_PIXELS = 1e6  # a real lens at any resolution the benchmark has is far below
ROTATION_TOLERANCE = 1e-3  # largest entry of |R R^T - I| (calibrations are orthonormal to float precision)


def camera_problem(
    world_2_cam: np.ndarray, intrinsics: np.ndarray, image_size: tuple[int, int] | None = None
) -> str | None:
    """What makes one camera unusable, as a phrase ("its ... is ..."), or None when it is sound.

    Sound: every entry finite; ``world_2_cam`` (4, 4) rigid (last row [0, 0, 0, 1], an orthonormal rotation with
    determinant +1: the inverse written as camera-to-world is its transpose) with the camera centre within
    MAX_CAMERA_DISTANCE of the origin; ``intrinsics`` (3, 3) with last row [0, 0, 1], focal lengths positive
    and at most MAX_FOCAL_PIXELS, skew no larger than them, and, for an ``image_size`` (width, height), the
    principal point within one image size of the image.
    """
    pose, k = np.asarray(world_2_cam, dtype=np.float64), np.asarray(intrinsics, dtype=np.float64)
    if pose.shape != (4, 4) or k.shape != (3, 3):
        return f"its matrices have the shapes {pose.shape} and {k.shape}, not (4, 4) and (3, 3)"
    for name, matrix in (("world_2_cam", pose), ("intrinsic", k)):
        if not np.all(np.isfinite(matrix)):
            return f"its {name} matrix holds NaN or infinite values"
    if not np.array_equal(pose[3], [0.0, 0.0, 0.0, 1.0]):
        return "its world_2_cam matrix's last row is not [0, 0, 0, 1]"
    rotation = pose[:3, :3]
    with np.errstate(all="ignore"):
        deviation = np.abs(rotation @ rotation.T - np.eye(3)).max()
        orthonormal = deviation <= ROTATION_TOLERANCE and np.linalg.det(rotation) > 0
        centre = rotation.T @ pose[:3, 3]
        distance = float(np.hypot(np.hypot(centre[0], centre[1]), centre[2]))  # no overflow below 1.8e308
    if not orthonormal:
        return "its world_2_cam rotation is not a rotation (orthonormal with determinant +1)"
    if distance > MAX_CAMERA_DISTANCE:
        return f"its camera centre lies {distance:.3g} m from the origin, more than {MAX_CAMERA_DISTANCE:g} m"
    if not np.array_equal(k[2], [0.0, 0.0, 1.0]) or k[1, 0] != 0:
        return "its intrinsic matrix is not upper triangular with last row [0, 0, 1]"
    fx, fy, skew = k[0, 0], k[1, 1], k[0, 1]
    if not (0 < fx <= MAX_FOCAL_PIXELS and 0 < fy <= MAX_FOCAL_PIXELS) or abs(skew) > max(fx, fy):
        return (f"its focal lengths ({fx:.6g}, {fy:.6g}) or skew ({skew:.6g}) are out of range "
                f"(positive, at most {MAX_FOCAL_PIXELS:g} pixels)")
    if image_size is not None:
        width, height = image_size
        cx, cy = k[0, 2], k[1, 2]
        if not (-width <= cx <= 2 * width and -height <= cy <= 2 * height):
            return (f"its principal point ({cx:.6g}, {cy:.6g}) lies more than an image size outside the "
                    f"{width}x{height} image")
    return None


def first_camera_problem(
    serials, world_2_cam: np.ndarray, intrinsics: np.ndarray, image_size: tuple[int, int] | None = None
) -> tuple[str, str] | None:
    """(serial, problem) of the first unusable camera among ``serials`` (stacked matrices in that order), or None."""
    for serial, pose, k in zip(serials, world_2_cam, intrinsics):
        problem = camera_problem(pose, k, image_size)
        if problem is not None:
            return str(serial), problem
    return None


def nerf_frame_problem(frame: object) -> str | None:
    """What makes the camera of one frame of a NeRF-style ``transforms.json`` unusable (``transform_matrix`` an
    OpenGL camera-to-world pose; ``fl_x fl_y cx cy w h``, as VHAP and nerfstudio write them), or None."""
    keys = ("fl_x", "fl_y", "cx", "cy", "w", "h")
    if not isinstance(frame, dict) or not all(_is_number(frame.get(key)) for key in keys):
        return f"it lacks one of the numbers {', '.join(keys)}"
    rows = frame.get("transform_matrix")
    if not (isinstance(rows, list) and len(rows) == 4
            and all(isinstance(row, list) and len(row) == 4 and all(map(_is_number, row)) for row in rows)):
        return "its transform_matrix is not 4 rows of 4 numbers"
    width, height = frame["w"], frame["h"]
    if not (float(width).is_integer() and float(height).is_integer() and width > 0 and height > 0):
        return f"its image size {width}x{height} is not two positive whole numbers"
    pose = np.array(rows, dtype=np.float64)
    if not np.array_equal(pose[3], [0.0, 0.0, 0.0, 1.0]):
        return "its transform_matrix's last row is not [0, 0, 0, 1]"
    intrinsics = np.array([[frame["fl_x"], 0.0, frame["cx"]], [0.0, frame["fl_y"], frame["cy"]], [0.0, 0.0, 1.0]])
    with np.errstate(all="ignore"):
        world_2_cam = opengl_to_opencv_world_to_camera(pose)
    return camera_problem(world_2_cam, intrinsics, (int(width), int(height)))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def transforms_problem(document: object) -> str | None:
    """The first unusable camera among the ``frames`` of a transforms document, as "its frame N: ...", or None."""
    frames = document.get("frames") if isinstance(document, dict) else None
    for index, frame in enumerate(frames if isinstance(frames, list) else []):
        if (problem := nerf_frame_problem(frame)) is not None:
            return f"its frame {index}: {problem}"
    return None


def check_transforms(documents: dict[str, object], where: str) -> None:
    """Refuse to write transforms documents (file name -> document) holding an unusable camera (StoreError)."""
    for name, document in documents.items():
        if (problem := transforms_problem(document)) is not None:
            raise StoreError(f"The export of {where} would write an unusable camera into {name}: {problem}; "
                             "check the store's calibration and the tracking's scale.")
