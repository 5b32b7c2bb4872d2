"""The NeRF-style ``transforms*.json`` files of an export: per-frame cameras, files and original frame indices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import schema
from ..cameras import opengl_camera_to_world
from ..atomic import write_atomic
from .plan import ExportPlan, Frame

CAMERA_CONVENTION = (
    "transform_matrix is camera-to-world in the OpenGL/NeRF convention (camera x right, y up, z backward; "
    "the camera looks along -z); world units as the calibration (metres)"
)
PIXEL_CONVENTION = (
    "fl_x, fl_y, cx, cy in pixels of this level's w x h image, origin at the top-left, rows down, pixel centres "
    "at integer coordinates (OpenCV K = [[fl_x, 0, cx], [0, fl_y, cy], [0, 0, 1]]); for codebases that put "
    "pixel centres at +0.5 (e.g. nerfstudio's ray generator) add 0.5 to cx and cy"
)
SPLIT_FILES = {
    "transforms.json": lambda frame: frame.has_image,
    "transforms_train.json": lambda frame: frame.split == "train",
    "transforms_val.json": lambda frame: frame.val,
    "transforms_test.json": lambda frame: frame.split == "test",
}


def frame_entry(plan: ExportPlan, frame: Frame, cam_2_world: np.ndarray, intrinsics: np.ndarray) -> dict:
    """The JSON object of one frame; hold-out frames have null image paths (the benchmark has no video)."""
    entry = {
        "file_path": frame.image_path() if frame.has_image else None,
        "timestep_index": frame.timestep,
        "camera_index": frame.camera_index,
        "camera_serial": frame.serial,
        "fl_x": float(intrinsics[0, 0]),
        "fl_y": float(intrinsics[1, 1]),
        "cx": float(intrinsics[0, 2]),
        "cy": float(intrinsics[1, 2]),
        "w": int(plan.dataset.attrs[schema.WIDTH_ATTR]),
        "h": int(plan.dataset.attrs[schema.HEIGHT_ATTR]),
        "transform_matrix": cam_2_world.tolist(),
    }
    if plan.has_alpha:
        entry["fg_mask_path"] = frame.mask_path() if frame.has_image else None
    if plan.has_tracking:
        entry["flame_param_path"] = plan.flame_path(frame.timestep)
    return entry


def transforms_documents(plan: ExportPlan) -> dict[str, dict]:
    """File name -> JSON document: transforms.json (every frame with an image) and the train / val / test files;
    frames without an image (hold-out cameras) are listed in transforms_test.json only."""
    world_2_cam = plan.dataset[schema.WORLD_2_CAM].values
    intrinsics = plan.dataset[schema.INTRINSICS].values
    cam_2_world = opengl_camera_to_world(world_2_cam)
    header = {
        "benchmark": plan.benchmark,
        "participant": plan.participant,
        "sequence": plan.sequence,
        "level": plan.level,
        "background": plan.background if plan.background != "none" else "none (RGBA, straight alpha)",
        "camera_convention": CAMERA_CONVENTION,
        "pixel_convention": PIXEL_CONVENTION,
        "timestep_meaning": "timestep_index is the original frame index of the recording",
        "serials": [str(serial) for serial in plan.dataset[schema.SERIAL].values],
    }
    entries = [
        (frame, frame_entry(plan, frame, cam_2_world[frame.camera_index], intrinsics[frame.camera_index]))
        for frame in plan.frames
    ]
    return {
        name: {**header, "frames": [entry for frame, entry in entries if keep(frame)]}
        for name, keep in SPLIT_FILES.items()
    }


def write_transforms(out: Path, plan: ExportPlan) -> dict[str, int]:
    """Write the four transforms files atomically; return the number of frames in each."""
    counts = {}
    for name, document in transforms_documents(plan).items():
        write_atomic(out / name, json.dumps(document, indent=1).encode())
        counts[name] = len(document["frames"])
    return counts
