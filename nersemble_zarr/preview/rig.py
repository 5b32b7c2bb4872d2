"""A 3D plot of a sequence's camera rig: every camera as a frustum around the head, hold-out cameras in red."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .. import schema
from ..cameras import opencv_camera_to_world
from .overlay import Overlay
from .picture import DPI
from .sheet import camera_splits

HOLD_OUT_COLOUR = "#ff0000"
TRAIN_COLOUR = "#1f5fbf"
HEAD_COLOUR = "#707070"
FRUSTUM_FRACTION = 0.18  # frustum depth as a share of the median camera distance to the head


def rig_picture(dataset: xr.Dataset, head: Overlay | None = None, *, size: tuple[int, int] = (900, 750)) -> np.ndarray:
    """The camera rig of a sequence Dataset as an (H, W, 3) uint8 picture of ``size`` (width, height).

    Cameras come from ``world_2_cam`` / ``intrinsics`` (OpenCV). The
    plot is turned so that "up" is the cameras' mean up direction and the rig faces the viewer; ``head``
    points (FLAME mesh or point cloud) are drawn in grey. Each camera is numbered at its centre (a number
    is short enough not to run into its neighbours' labels); a key beside the plot names its serial.
    """
    figure = rig_figure(dataset, head, size=size)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def rig_figure(dataset: xr.Dataset, head: Overlay | None = None, *, size: tuple[int, int] = (900, 750)):
    """The matplotlib Figure that ``rig_picture`` draws (attached to an Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    world_2_cam = np.asarray(dataset[schema.WORLD_2_CAM].values, dtype=np.float64)
    intrinsics = np.asarray(dataset[schema.INTRINSICS].values, dtype=np.float64)
    serials = [str(s) for s in dataset[schema.SERIAL].values]
    splits = camera_splits(dataset)
    cam_2_world = opencv_camera_to_world(world_2_cam)
    centres = cam_2_world[:, :3, 3]
    target = _look_at_point(centres, cam_2_world[:, :3, 2])
    basis = _view_basis(centres - target, -cam_2_world[:, :3, 1])
    depth = FRUSTUM_FRACTION * float(np.median(np.linalg.norm(centres - target, axis=1)))
    corners = _frustum_corners(cam_2_world, intrinsics, depth)

    def view(points: np.ndarray) -> np.ndarray:
        return (points - target) @ basis.T

    figure = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.0, 0.0, 0.78, 0.95), projection="3d")
    if head is not None:
        axes.scatter(*view(head.points).T, s=0.5, color=HEAD_COLOUR, depthshade=False)
    rectangles = view(corners.reshape(-1, 3)).reshape(-1, 4, 3)
    key = []
    for number, (serial, split, centre, rectangle) in enumerate(zip(serials, splits, view(centres), rectangles)):
        colour = HOLD_OUT_COLOUR if split == "test" else TRAIN_COLOUR
        for corner in rectangle:
            axes.plot(*np.stack([centre, corner]).T, color=colour, linewidth=1.2)
        axes.plot(*np.vstack([rectangle, rectangle[:1]]).T, color=colour, linewidth=1.2)
        axes.text(*centre, str(number), color=colour, fontsize=7, ha="center", va="bottom")
        key.append((f"{number:>2} {serial}{' hold-out' if split == 'test' else ''}", colour))
    for row, (text, colour) in enumerate(key):
        figure.text(0.79, 0.88 - row * 0.045, text, color=colour, fontsize=8, family="DejaVu Sans Mono")
    drawn = np.vstack([view(centres), view(corners.reshape(-1, 3)), np.zeros((1, 3))])
    middle, half = (drawn.max(axis=0) + drawn.min(axis=0)) / 2, 0.55 * (drawn.max(axis=0) - drawn.min(axis=0)).max()
    for set_limits, centre in zip((axes.set_xlim, axes.set_ylim, axes.set_zlim), middle):
        set_limits(centre - half, centre + half)
    axes.set_box_aspect((1, 1, 1))
    axes.view_init(elev=25, azim=-115)
    axes.set_xlabel("right")
    axes.set_ylabel("towards the cameras")
    axes.set_zlabel("up")
    axes.legend(handles=[Line2D([], [], color=TRAIN_COLOUR, label="train camera"),
                         Line2D([], [], color=HOLD_OUT_COLOUR, label="hold-out camera")], loc="upper left")
    group = schema.sequence_group_of(dataset.attrs)
    title = f"{group}: {len(serials)} cameras"
    axes.set_title(title + (f"; head: {head.description}" if head is not None else ""), fontsize=9)
    return figure


def _look_at_point(centres: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """The point closest (least squares) to every camera's optical axis: where the rig looks."""
    projectors = np.eye(3) - np.einsum("si,sj->sij", axes, axes)
    return np.linalg.lstsq(projectors.sum(axis=0), np.einsum("sij,sj->i", projectors, centres), rcond=None)[0]


def _view_basis(offsets: np.ndarray, ups: np.ndarray) -> np.ndarray:
    """Rows right, forward (head towards the cameras), up, orthonormal and right-handed."""
    up = ups.mean(axis=0)
    up /= np.linalg.norm(up)
    forward = offsets.mean(axis=0)
    if np.linalg.norm(forward - forward @ up * up) < 1e-9:  # cameras all around: any horizontal direction
        forward = np.eye(3)[np.argmin(np.abs(up))]
    forward -= forward @ up * up
    forward /= np.linalg.norm(forward)
    return np.stack([np.cross(forward, up), forward, up])


def _frustum_corners(cam_2_world: np.ndarray, intrinsics: np.ndarray, depth: float) -> np.ndarray:
    """World positions (serial, 4, 3) of the image corners at camera depth ``depth``; the image spans twice
    the principal point (the frame size the intrinsics belong to, whatever the stored frames' size)."""
    corners = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], dtype=np.float64)
    pixels = np.concatenate([corners[None] * intrinsics[:, None, :2, 2], np.ones((len(intrinsics), 4, 1))], axis=-1)
    rays = np.einsum("sij,scj->sci", np.linalg.inv(intrinsics), pixels)
    camera_points = rays * (depth / rays[..., 2:3])
    return np.einsum("sij,scj->sci", cam_2_world[:, :3, :3], camera_points) + cam_2_world[:, None, :3, 3]
