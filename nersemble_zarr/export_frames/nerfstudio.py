"""nerfstudio's ``transforms.json`` (its "nerfstudio-data" dataparser) for the exported frames.

Per frame: ``camera_model`` OPENCV with zero distortion, ``fl_x fl_y cx cy w h``, ``file_path``,
``transform_matrix`` (OpenGL camera-to-world, metres) and ``mask_path``. nerfstudio casts a pixel's ray through
its centre at ``(j + 0.5, i + 0.5)`` while the store puts pixel centres at integers, so ``cx`` and ``cy`` are the
store's plus 0.5. Only views with an image are listed (nerfstudio has no view without one). With a validation
split the document names its frames in ``train_filenames``, ``val_filenames`` and ``test_filenames`` (the
held-out frames in both val and test: ``ns-train`` evaluates on val, ``ns-eval`` on test), which nerfstudio's
dataparser follows instead of its ``eval_mode``; without one nerfstudio splits by its ``eval_mode``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .. import schema
from ..atomic import write_atomic
from ..errors import ConfigError
from ..cameras import check_transforms, opengl_camera_to_world
from .plan import ExportPlan

PIXEL_CENTRE_SHIFT = 0.5
TRANSFORMS_FILE = "transforms.json"


def nerfstudio_plan(plan: ExportPlan) -> ExportPlan:
    """The plan without views that have no image (refusing a sequence with none)."""
    frames = tuple(frame for frame in plan.frames if frame.has_image)
    if not frames:
        raise ConfigError(f"{plan.group} has no view with an image among the chosen cameras; nerfstudio needs images.")
    return replace(plan, frames=frames)


def transforms_document(plan: ExportPlan) -> dict:
    """The transforms.json document nerfstudio's dataparser reads."""
    cam_2_world = opengl_camera_to_world(plan.dataset[schema.WORLD_2_CAM].values)
    intrinsics = plan.dataset[schema.INTRINSICS].values
    width, height = int(plan.dataset.attrs[schema.WIDTH_ATTR]), int(plan.dataset.attrs[schema.HEIGHT_ATTR])
    frames = []
    for frame in plan.frames:
        k = intrinsics[frame.camera_index]
        entry = {
            "file_path": frame.image_path(),
            "transform_matrix": cam_2_world[frame.camera_index].tolist(),
            "camera_model": "OPENCV",
            "fl_x": float(k[0, 0]),
            "fl_y": float(k[1, 1]),
            "cx": float(k[0, 2]) + PIXEL_CENTRE_SHIFT,
            "cy": float(k[1, 2]) + PIXEL_CENTRE_SHIFT,
            "w": width,
            "h": height,
            "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
        }
        if plan.has_alpha:
            entry["mask_path"] = frame.mask_path()
        frames.append(entry)
    document = {"camera_model": "OPENCV", "frames": frames}
    if plan.validation:
        held_out = [frame.image_path() for frame in plan.frames if frame.held_out]
        document["train_filenames"] = [frame.image_path() for frame in plan.frames if not frame.held_out]
        document["val_filenames"] = document["test_filenames"] = held_out
    return document


def write_transforms(out: Path, plan: ExportPlan) -> dict[str, int]:
    """Write transforms.json atomically; return the number of frames listed."""
    document = transforms_document(plan)
    check_transforms({TRANSFORMS_FILE: document}, plan.group)
    write_atomic(out / TRANSFORMS_FILE, json.dumps(document, indent=2).encode())
    return {TRANSFORMS_FILE: len(document["frames"])}
