"""VHAP's NeRF-dataset layout (what GaussianAvatars trains on), file for file and key for key.

Layout of OUT, as VHAP's ``export_as_nerf_dataset.py`` writes it: ``images/{ti:05d}_{ci:02d}.png``,
``fg_masks/{ti:05d}_{ci:02d}.png``, ``flame_param/{ti:05d}.npz``, ``canonical_flame_param.npz``,
``transforms.json``, ``transforms_backup.json``, ``transforms_backup_flame.json`` and
``transforms_{train,val,test}.json``. ``ti`` is the dense timestep index (0..N-1 over the exported timesteps; the
store's frame index is ``timestep_index_original``), ``ci`` the camera's index in the store. The train, val and
test files divide the frames as VHAP's ``split_json`` does, or by a validation split. FLAME parameters
are converted into VHAP's convention (:mod:`nersemble_zarr.flame.convention`): the exported world is the
benchmark's divided by the tracking's ``scale``, so camera positions are divided by it too. Cameras are
VHAP's: ``transform_matrix`` OpenGL camera-to-world, ``fl_x fl_y cx`` the store's, ``cy`` flipped to ``h - cy``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import catalogue, schema
from ..atomic import write_atomic
from ..cameras import check_transforms, opengl_camera_to_world
from ..flame.convention import ConvertedFlame, scale_world_to_camera, to_vhap
from ..flame.model import load_flame_assets
from ..flame.sequence import flame_parameters
from ..errors import ConfigError
from .pixels import write_npz, write_png
from .plan import FLAME_DIR, IMAGES_DIR, MASKS_DIR, ExportPlan, Frame

CANONICAL_FILE = "canonical_flame_param.npz"
TRAIN_RATIO = 0.7          # VHAP's split_json: the first 70% of timesteps train (and val), the rest test
VAL_CAMERA_INDEX = 8       # VHAP's validation camera (NeRSemble's front view) when present, else the last one
PLACEHOLDER_STEM = "render_target"
SHARED_INTRINSICS = ("cx", "cy", "fl_x", "fl_y", "h", "w", "camera_angle_x", "camera_angle_y")


@dataclass(frozen=True)
class VhapFrame(Frame):
    """An exported view named by its dense timestep index and camera index, as VHAP names files."""

    dense_index: int = 0
    placeholder: bool = False  # a render-target view: its image is a blank of the camera's size

    @property
    def stem(self) -> str:
        if self.placeholder:
            return f"{PLACEHOLDER_STEM}_{self.camera_index:02d}"
        return f"{self.dense_index:05d}_{self.camera_index:02d}"

    def image_path(self) -> str:
        return f"{IMAGES_DIR}/{self.stem}.png"

    def mask_path(self) -> str:
        return f"{MASKS_DIR}/{self.stem}.png"

    def flame_path(self) -> str:
        return f"{FLAME_DIR}/{self.dense_index:05d}.npz"


def vhap_plan(plan: ExportPlan, render_target: bool = False) -> ExportPlan:
    """The plan with VHAP's frames, densely indexed: the views with an image (VHAP lists no others), or with
    ``render_target`` the views without one of the cameras a submission holds, each pointing at a blank image."""
    chosen = [frame for frame in plan.frames if frame.has_image != render_target]
    if render_target:  # the views a submission holds
        chosen = [frame for frame in chosen if frame.serial in catalogue.submission_serials(plan.benchmark)]
    if not chosen:
        if render_target:
            raise ConfigError(f"{plan.group} has no view without an image among the chosen submission cameras; "
                              "nothing to export as a render target.")
        raise ConfigError(f"{plan.group} has no view with an image among the chosen cameras; export its hold-out "
                          "views for rendering with --render-target.")
    dense = {timestep: index for index, timestep in enumerate(sorted({frame.timestep for frame in chosen}))}
    frames = tuple(
        VhapFrame(**{name: getattr(frame, name) for name in Frame.__dataclass_fields__},
                  dense_index=dense[frame.timestep], placeholder=render_target)
        for frame in chosen
    )
    return replace(plan, frames=frames)


def write_placeholders(out: Path, plan: ExportPlan) -> None:
    """One blank image (and mask) per camera of a render target: GaussianAvatars opens an image for every view."""
    width, height = int(plan.dataset.attrs[schema.WIDTH_ATTR]), int(plan.dataset.attrs[schema.HEIGHT_ATTR])
    for frame in {frame.camera_index: frame for frame in plan.frames if frame.placeholder}.values():
        write_png(out / frame.image_path(), np.zeros((height, width, 3), dtype=np.uint8))
        if plan.has_alpha:
            write_png(out / frame.mask_path(), np.zeros((height, width), dtype=np.uint8))


def converted_flame(plan: ExportPlan, flame_dir: str | os.PathLike | None) -> ConvertedFlame | None:
    """The sequence's tracking in VHAP's convention (None without tracking); needs the FLAME model's joints."""
    if not plan.has_tracking:
        return None
    return to_vhap(load_flame_assets(flame_dir), flame_parameters(plan.dataset))


def write_flame_files(out: Path, plan: ExportPlan, flame: ConvertedFlame | None) -> int:
    """canonical_flame_param.npz and one npz per dense timestep (skipping those on disk); the number written."""
    if flame is None:
        return 0
    write_npz(out / CANONICAL_FILE, flame.canonical_arrays())
    written = 0
    for frame in {frame.dense_index: frame for frame in plan.frames}.values():
        path = out / frame.flame_path()
        if not path.exists():
            write_npz(path, flame.timestep_arrays(frame.position))
            written += 1
    return written


def vhap_principal_point(intrinsics: np.ndarray, height: int) -> tuple[float, float]:
    """(cx, cy) as VHAP's files hold them: its exporter converts cameras 'opencv->opengl', which flips the
    principal point's y to ``h - cy`` (its renderer's projection then reads ``(h - 2 cy) / h``); x is kept."""
    return float(intrinsics[0, 2]), float(height - intrinsics[1, 2])


def frame_entry(plan: ExportPlan, frame: VhapFrame, cam_2_world: np.ndarray, intrinsics: np.ndarray) -> dict:
    """One frame of VHAP's transforms.json, keys in VHAP's order and each meaning what it means in VHAP's files."""
    width, height = int(plan.dataset.attrs[schema.WIDTH_ATTR]), int(plan.dataset.attrs[schema.HEIGHT_ATTR])
    fl_x, fl_y = float(intrinsics[0, 0]), float(intrinsics[1, 1])
    cx, cy = vhap_principal_point(intrinsics, height)
    entry = {
        "timestep_index": frame.dense_index,
        "timestep_index_original": frame.timestep,
        "timestep_id": f"{frame.timestep:05d}",
        "camera_index": frame.camera_index,
        "camera_id": frame.serial,
        "cx": cx,
        "cy": cy,
        "fl_x": fl_x,
        "fl_y": fl_y,
        "h": height,
        "w": width,
        "camera_angle_x": math.atan(width / (fl_x * 2)) * 2,
        "camera_angle_y": math.atan(height / (fl_y * 2)) * 2,
        "transform_matrix": cam_2_world.tolist(),
        "file_path": frame.image_path(),
    }
    if plan.has_alpha:
        entry["fg_mask_path"] = frame.mask_path()
    return entry


def transforms_documents(plan: ExportPlan, world_scale: float, render_target: bool = False) -> dict[str, dict]:
    """File name -> JSON document for the seven transforms files VHAP writes; a render target lists every view
    in transforms_train.json (val and test empty), the order GaussianAvatars' ``render.py --target_path`` renders;
    a plan with a validation split divides its frames by the split (:func:`validation_documents`)."""
    world_2_cam = scale_world_to_camera(plan.dataset[schema.WORLD_2_CAM].values, world_scale)
    cam_2_world = opengl_camera_to_world(world_2_cam)
    intrinsics = plan.dataset[schema.INTRINSICS].values
    entries = [frame_entry(plan, f, cam_2_world[f.camera_index], intrinsics[f.camera_index]) for f in plan.frames]
    backup = _database(entries)
    if plan.has_tracking:
        entries = [{**entry, "flame_param_path": frame.flame_path()} for entry, frame in zip(entries, plan.frames)]
    full = _database(entries)
    documents = {"transforms.json": full, "transforms_backup.json": backup, "transforms_backup_flame.json": full}
    if not plan.has_tracking:
        del documents["transforms_backup_flame.json"]
    if render_target:
        documents.update(render_target_documents(full))
    elif plan.validation:
        documents.update(validation_documents(full, [frame.held_out for frame in plan.frames]))
    else:
        documents.update(split_documents(full))
    return documents


def render_target_documents(database: dict) -> dict[str, dict]:
    """transforms_{train,val,test}.json of a render target: every view in train, in export order."""
    empty = {**{key: value for key, value in database.items() if key != "frames"}, "frames": []}
    return {"transforms_train.json": database, "transforms_val.json": empty, "transforms_test.json": empty}


def _database(entries: list[dict]) -> dict:
    """frames, then the shared intrinsics (of the last frame, as VHAP does), then the index lists."""
    database: dict = {"frames": entries}
    database.update({key: entries[-1][key] for key in SHARED_INTRINSICS} if entries else {})
    database["timestep_indices"] = sorted({entry["timestep_index"] for entry in entries})
    database["camera_indices"] = sorted({entry["camera_index"] for entry in entries})
    return database


def split_documents(database: dict) -> dict[str, dict]:
    """transforms_{train,val,test}.json the way VHAP's split_json divides a dataset.

    The first ceil(70%) of timesteps are train (all cameras but the validation camera) and val (that camera);
    the remaining timesteps are test (every camera). With one camera the validation set is empty.
    """
    shared = {key: value for key, value in database.items()
              if key not in ("frames", "timestep_indices", "camera_indices")}
    timesteps, cameras = database["timestep_indices"], database["camera_indices"]
    n_train = int(np.ceil(len(timesteps) * TRAIN_RATIO))
    if len(cameras) > 1:
        val_camera = VAL_CAMERA_INDEX if VAL_CAMERA_INDEX in cameras else cameras[-1]
        train_cameras, val_cameras = [c for c in cameras if c != val_camera], [val_camera]
    else:
        train_cameras, val_cameras = cameras, []
    train_steps, test_steps = set(timesteps[:n_train]), set(timesteps[n_train:])
    frames = database["frames"]
    return {
        "transforms_train.json": {**shared, "frames": [
            f for f in frames if f["timestep_index"] in train_steps and f["camera_index"] in train_cameras],
            "timestep_indices": timesteps[:n_train], "camera_indices": train_cameras},
        "transforms_val.json": {**shared, "frames": [
            f for f in frames if f["timestep_index"] in train_steps and f["camera_index"] in val_cameras],
            "timestep_indices": timesteps[:n_train], "camera_indices": val_cameras},
        "transforms_test.json": {**shared, "frames": [f for f in frames if f["timestep_index"] in test_steps],
                                 "timestep_indices": timesteps[n_train:], "camera_indices": cameras},
    }


def validation_documents(database: dict, held_out: list[bool]) -> dict[str, dict]:
    """transforms_{train,val,test}.json of a validation split: the frames it holds out in val, and again in test
    (GaussianAvatars reads FLAME parameters from the train and test files only, so a held-out timestep that no
    train frame has gets its mesh from test); every other frame in train. Each file's ``timestep_indices`` and
    ``camera_indices`` are those its frames have."""
    shared = {key: value for key, value in database.items()
              if key not in ("frames", "timestep_indices", "camera_indices")}

    def division(frames: list[dict]) -> dict:
        return {**shared, "frames": frames, "timestep_indices": sorted({f["timestep_index"] for f in frames}),
                "camera_indices": sorted({f["camera_index"] for f in frames})}

    frames = database["frames"]
    validation = division([frame for frame, out in zip(frames, held_out) if out])
    return {"transforms_train.json": division([frame for frame, out in zip(frames, held_out) if not out]),
            "transforms_val.json": validation, "transforms_test.json": validation}


def write_transforms(
    out: Path, plan: ExportPlan, flame: ConvertedFlame | None, render_target: bool = False
) -> dict[str, int]:
    """Write VHAP's transforms files atomically; return the number of frames in each."""
    documents = transforms_documents(plan, flame.world_scale if flame is not None else 1.0, render_target)
    check_transforms(documents, plan.group)
    for name, document in documents.items():
        write_atomic(out / name, json.dumps(document, indent=4).encode())
    return {name: len(document["frames"]) for name, document in documents.items()}
