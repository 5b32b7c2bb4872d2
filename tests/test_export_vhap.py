"""export-frames --format vhap / nerfstudio and the union of VHAP exports, read the way their consumers read them.

GaussianAvatars, VHAP and nerfstudio do not install here, so this module re-implements, in its own words, what
their loaders do with an export: GaussianAvatars' scene-type choice, ``readCamerasFromTransforms`` (image paths
joined as it joins them), ``readMeshesFromTransforms`` and ``load_meshes`` with its FLAME call (rotation as the
global pose of linear blend skinning, translation added after; the ``flame_model`` package's FLAME on the stand-in
model) and its rasteriser's projection (field of view only, principal point at the image centre); VHAP's
``NeRFDataset`` item reading and its renderer's projection (``NVDiffRenderer.world_to_ndc`` with ``flip_y``, back
to pixels as its tracker maps landmarks); and nerfstudio's transforms.json parsing and pixel-centre ray model. The
meshes and points they produce must land on the same pixels as the store's, seen through the store's cameras.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from helpers import run_cli
from nersemble_zarr import catalogue, schema, storage
from nersemble_zarr.cameras import project_opencv
from nersemble_zarr.errors import ConfigError
from nersemble_zarr.export_frames import export_frames
from nersemble_zarr.export_frames.union import combine_vhap_exports
from nersemble_zarr.flame.convention import scale_world_to_camera, to_vhap
from nersemble_zarr.flame.model import load_flame_assets
from nersemble_zarr.flame.sequence import flame_parameters

MONO = (393, "EXP-1-head")
PIXEL_TOLERANCE = 1e-3
VHAP_FRAME_KEYS = [
    "timestep_index", "timestep_index_original", "timestep_id", "camera_index", "camera_id", "cx", "cy", "fl_x",
    "fl_y", "h", "w", "camera_angle_x", "camera_angle_y", "transform_matrix", "file_path", "fg_mask_path",
    "flame_param_path",
]
VHAP_NPZ = {  # key -> shape as VHAP's TrackedFLAMEDatasetWriter writes it
    "translation": (1, 3), "rotation": (1, 3), "neck_pose": (1, 3), "jaw_pose": (1, 3), "eyes_pose": (1, 6),
    "shape": (300,), "expr": (1, 100), "static_offset": (1, 5023, 3),
}


# ------------------------------------------------------------ the consumers' loading logic, re-implemented

def ga_scene_type(path: Path) -> str:
    """GaussianAvatars' Scene: which reader a source folder gets."""
    if (path / "sparse").exists():
        return "Colmap"
    if (path / "canonical_flame_param.npz").exists():
        return "DynamicNerf"
    if (path / "transforms_train.json").exists():
        return "Blender"
    raise AssertionError("Could not recognize scene type!")


def ga_read_cameras(path: Path, transforms_file: str) -> list[dict]:
    """GaussianAvatars' readCamerasFromTransforms: R (transposed w2c rotation), T, FovX/FovY, timestep, camera.

    Like GaussianAvatars it joins the folder onto the file path twice (``os.path.join(path, os.path.join(path,
    file_path))``), which finds the image only when ``path`` is absolute (its train.py makes ``-s`` absolute,
    ``--target_path`` stays as given)."""
    contents = json.loads((Path(path) / transforms_file).read_text())
    fovx_shared = contents.get("camera_angle_x")
    cameras = []
    for index, frame in enumerate(contents["frames"]):
        file_path = frame["file_path"]
        if ".png" not in file_path:
            file_path += ".png"
        cam_name = os.path.join(str(path), file_path)
        c2w = np.array(frame["transform_matrix"])
        c2w[:3, 1:3] *= -1
        w2c = np.linalg.inv(c2w)
        width, height = frame["w"], frame["h"]  # both present, so the image is not opened here
        fovx = frame["camera_angle_x"] if "camera_angle_x" in frame else fovx_shared
        fovy = 2 * math.atan(height / (2 * (width / (2 * math.tan(fovx / 2)))))
        cameras.append({
            "uid": index, "R": w2c[:3, :3].T, "T": w2c[:3, 3], "FovX": fovx, "FovY": fovy,
            "image_path": Path(os.path.join(str(path), cam_name)), "width": width, "height": height,
            "timestep": frame.get("timestep_index"),
            "camera_id": frame["camera_index"] if "camera_id" in frame else None,
            "frame": frame,
        })
    return cameras


def ga_read_meshes(path: Path, transforms_file: str) -> dict[int, dict]:
    """GaussianAvatars' readMeshesFromTransforms: one npz per timestep_index."""
    frames = json.loads((path / transforms_file).read_text())["frames"]
    meshes = {}
    for frame in frames:
        if "timestep_index" not in frame or frame["timestep_index"] in meshes:
            continue
        meshes[frame["timestep_index"]] = dict(np.load(path / frame["flame_param_path"], allow_pickle=True))
    return meshes


def ga_dynamic_nerf(path: Path) -> dict:
    """GaussianAvatars' readDynamicNerfInfo without a target path: train, val and test cameras and meshes."""
    return {
        "train": ga_read_cameras(path, "transforms_train.json"),
        "train_meshes": ga_read_meshes(path, "transforms_train.json"),
        "val": ga_read_cameras(path, "transforms_val.json"),
        "test": ga_read_cameras(path, "transforms_test.json"),
        "test_meshes": ga_read_meshes(path, "transforms_test.json"),
    }


def ga_load_meshes(train_meshes: dict, test_meshes: dict, num_verts: int) -> dict[str, np.ndarray]:
    """FlameGaussianModel.load_meshes: per-timestep tables filled row by row, static offset padded."""
    meshes = {**train_meshes, **test_meshes}
    n_timesteps = max(meshes) + 1
    static_offset = meshes[0]["static_offset"]
    if static_offset.shape[0] != num_verts:
        pad = num_verts - meshes[0]["static_offset"].shape[1]
        static_offset = np.pad(static_offset, ((0, 0), (0, pad), (0, 0)))
    params = {
        "shape": meshes[0]["shape"],
        "expr": np.zeros([n_timesteps, meshes[0]["expr"].shape[1]], dtype=np.float32),
        "rotation": np.zeros([n_timesteps, 3], dtype=np.float32),
        "neck_pose": np.zeros([n_timesteps, 3], dtype=np.float32),
        "jaw_pose": np.zeros([n_timesteps, 3], dtype=np.float32),
        "eyes_pose": np.zeros([n_timesteps, 6], dtype=np.float32),
        "translation": np.zeros([n_timesteps, 3], dtype=np.float32),
        "static_offset": static_offset,
    }
    for index, mesh in meshes.items():
        for key in ("expr", "rotation", "neck_pose", "jaw_pose", "eyes_pose", "translation"):
            params[key][index] = mesh[key]  # a (1, n) array into row i, as torch's setitem does
    return params


def ga_vertices(flame, params: dict[str, np.ndarray], timestep: int) -> np.ndarray:
    """FlameGaussianModel.select_mesh_by_timestep: FLAME with the global pose = rotation, then + translation."""
    import torch

    def row(name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(params[name][[timestep]], dtype=np.float32))

    assert not params["static_offset"].any()  # the stand-in FLAME has no static offset input: it must be zero
    with torch.no_grad():
        vertices, _ = flame.forward(
            shape_params=torch.from_numpy(np.asarray(params["shape"], dtype=np.float32))[None],
            expression_params=row("expr"), pose_params=torch.cat([row("rotation"), row("jaw_pose")], dim=1),
            neck_pose=row("neck_pose"), eye_pose=row("eyes_pose"), transl=row("translation"))
    return vertices[0].numpy().astype(np.float64)


def ga_pixels(camera: dict, points: np.ndarray) -> np.ndarray:
    """Pixels of world points as GaussianAvatars' rasteriser puts them: w2c rotation R^T and T, focal lengths from
    FovX and FovY, principal point at ((w - 1) / 2, (h - 1) / 2) (it reads no cx, cy)."""
    camera_points = points @ camera["R"] + camera["T"]
    fx = camera["width"] / (2 * math.tan(camera["FovX"] / 2))
    fy = camera["height"] / (2 * math.tan(camera["FovY"] / 2))
    return np.stack([
        fx * camera_points[:, 0] / camera_points[:, 2] + (camera["width"] - 1) / 2,
        fy * camera_points[:, 1] / camera_points[:, 2] + (camera["height"] - 1) / 2,
    ], axis=1)


def vhap_camera(frame: dict) -> dict:
    """What VHAP's NeRFDataset makes of a frame's camera: K from fl_x, fl_y, cx, cy as written, w2c extrinsics."""
    intrinsics = np.eye(3)
    intrinsics[[0, 1, 0, 1], [0, 1, 2, 2]] = [frame["fl_x"], frame["fl_y"], frame["cx"], frame["cy"]]
    return {"intrinsics": intrinsics, "extrinsics": np.linalg.inv(np.array(frame["transform_matrix"])),
            "image_height": frame["h"], "image_width": frame["w"]}


def vhap_pixels(camera: dict, points: np.ndarray, near: float = 0.1, far: float = 10.0) -> np.ndarray:
    """Pixels of world points through VHAP's own projection: NVDiffRenderer.world_to_ndc(points, RT, K, (h, w),
    flip_y=True), its projection_from_intrinsics matrix, then image coordinates as the tracker relates landmarks to
    NDC (normalize_image_points: ndc = 2 (u - w / 2) / w, inverted here)."""
    (fx, fy), (cx, cy) = np.diag(camera["intrinsics"])[:2], camera["intrinsics"][:2, 2]
    h, w = camera["image_height"], camera["image_width"]
    projection = np.zeros((4, 4))
    projection[0, 0], projection[1, 1] = fx * 2 / w, fy * 2 / h
    projection[0, 2], projection[1, 2] = (w - 2 * cx) / w, (h - 2 * cy) / h
    projection[2, 2], projection[2, 3] = -(far + near) / (far - near), -2 * far * near / (far - near)
    projection[3, 2] = -1
    clip = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ (projection @ camera["extrinsics"]).T
    ndc = clip[:, :3] / clip[:, 3:]
    ndc[:, 1] *= -1  # flip_y
    return np.stack([(ndc[:, 0] + 1) * w / 2, (ndc[:, 1] + 1) * h / 2], axis=1)


def export_shift(root: Path, serial: str) -> np.ndarray:
    """The whole pixels an export moved a camera's frames by (--centre-principal-point), from its settings."""
    settings = root / "nersemble_export.json"
    shifts = json.loads(settings.read_text()).get("principal_point_shifts", {}) if settings.is_file() else {}
    return np.array(shifts.get(serial, [0, 0]), dtype=np.float64)


def assert_lands_on_the_store_pixels(root: Path, camera: dict, vertices: np.ndarray, expected: np.ndarray,
                                     stored_k: np.ndarray) -> None:
    """``vertices`` seen by VHAP's projection (reading the frame's cx, cy) and by GaussianAvatars' (centred
    principal point, plus the offset from the centre of the exported image's principal point, which it ignores)
    land where the store's camera puts the store's mesh (``expected``), moved by the export's whole-pixel shift:
    both axes within PIXEL_TOLERANCE."""
    frame = camera["frame"]
    shift = export_shift(root, str(frame["camera_id"]))
    target = expected - shift
    np.testing.assert_allclose(vhap_pixels(vhap_camera(frame), vertices), target, rtol=0, atol=PIXEL_TOLERANCE)
    offset = stored_k[:2, 2] - shift - [(frame["w"] - 1) / 2, (frame["h"] - 1) / 2]
    np.testing.assert_allclose(ga_pixels(camera, vertices) + offset, target, rtol=0, atol=PIXEL_TOLERANCE)


def vhap_nerf_dataset(root: Path, division: str | None = None) -> list[dict]:
    """VHAP's NeRFDataset: every item with intrinsics K, w2c extrinsics, image, mask and FLAME parameters."""
    name = "transforms.json" if division is None else f"transforms_{division}.json"
    transforms = json.loads((root / name).read_text())
    assert len(transforms["timestep_indices"]) == max(transforms["timestep_indices"]) + 1
    items = []
    for frame in transforms["frames"]:
        item = {
            "timestep_index": frame["timestep_index"], "camera_index": frame["camera_index"], **vhap_camera(frame),
            "image": imagecodecs.png_decode((root / frame["file_path"]).read_bytes()),
        }
        if "fg_mask_path" in frame:
            item["fg_mask"] = imagecodecs.png_decode((root / frame["fg_mask_path"]).read_bytes())
        if "flame_param_path" in frame:
            item["flame_param"] = dict(np.load(root / frame["flame_param_path"], allow_pickle=True))
        items.append(item)
    return items


def nerfstudio_frames(root: Path, split: str | None = None) -> list[dict]:
    """nerfstudio's nerfstudio-data parser: per-frame (or shared) intrinsics, OPENCV model, files that exist,
    frames sorted by file name; with ``split`` ('train', 'val' or 'test') the frames its ``{split}_filenames``
    list names, as the parser does when the document has such lists (else its eval_mode decides: all frames
    here when ``split`` is None)."""
    meta = json.loads((root / "transforms.json").read_text())
    frames = []
    for frame in sorted(meta["frames"], key=lambda f: str(root / f["file_path"])):
        def value(key):
            return frame[key] if key in frame else meta[key]

        assert value("camera_model") == "OPENCV"
        assert all(value(k) == 0.0 for k in ("k1", "k2", "p1", "p2"))
        assert (root / frame["file_path"]).is_file() and (root / frame["mask_path"]).is_file()
        frames.append({key: value(key) for key in ("fl_x", "fl_y", "cx", "cy", "w", "h")}
                      | {"c2w": np.array(frame["transform_matrix"]), "file_path": frame["file_path"]})
    if split is None:
        return frames
    has_lists = any(f"{name}_filenames" in meta for name in ("train", "val", "test"))
    assert has_lists, "no filename lists: nerfstudio's eval_mode would split the frames"
    assert f"{split}_filenames" in meta, f"The dataset's list of filenames for split {split} is missing."
    wanted = {root / name for name in meta[f"{split}_filenames"]}
    assert not wanted - {root / frame["file_path"] for frame in frames}, "some filenames of the split were not found"
    return [frame for frame in frames if root / frame["file_path"] in wanted]


def nerfstudio_pixels(frame: dict, points: np.ndarray) -> np.ndarray:
    """Where nerfstudio's ray model sees world points: rays through (x, y) = (j + 0.5, i + 0.5) along
    [(x - cx) / fx, -(y - cy) / fy, -1] in OpenGL camera axes; returns pixel-index coordinates (j, i)."""
    c2w = frame["c2w"]
    local = (points - c2w[:3, 3]) @ c2w[:3, :3]
    x = frame["cx"] + frame["fl_x"] * local[:, 0] / -local[:, 2]
    y = frame["cy"] - frame["fl_y"] * local[:, 1] / -local[:, 2]
    return np.stack([x, y], axis=1) - 0.5


# ------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def exports(converted, standin_dir, tmp_path_factory) -> Path:
    """Two VHAP exports of the mono sequence side by side (every frame; every 2nd frame), named as VHAP names them."""
    parent = tmp_path_factory.mktemp("vhap")
    export_frames(converted, parent / "393_EXP-1-head", format="vhap", participant=MONO[0], sequence=MONO[1],
                  background="white", flame_dir=standin_dir, workers=2)
    export_frames(converted, parent / "393_EXP-1-head_stride2", format="vhap", participant=MONO[0],
                  sequence=MONO[1], stride=2, flame_dir=standin_dir, workers=2)
    return parent


@pytest.fixture(scope="module")
def reference_flame(plain_standin_dir):
    from flame_model import FLAME, FlameConfig

    return FLAME(FlameConfig(flame_folder=str(plain_standin_dir), shape_params=300, expression_params=100,
                             batch_size=1))


@pytest.fixture(scope="module")
def store_meshes(converted, cpu_model):
    """The benchmark-convention mesh of every stored timestep (project FLAME, stand-in) and the store's cameras."""
    dataset = storage.open_dataset(converted, schema.level_group(1, "mono_flame_avatar", *MONO))
    params = flame_parameters(dataset)
    vertices = cpu_model.evaluate(params).vertices.astype(np.float64)
    timesteps = [int(t) for t in dataset[schema.TIMESTEP].values]
    return {
        "vertices": dict(zip(timesteps, vertices)), "params": params,
        "world_2_cam": dataset[schema.WORLD_2_CAM].values, "intrinsics": dataset[schema.INTRINSICS].values,
    }


# ------------------------------------------------------------ VHAP layout, file for file and key for key

def test_vhap_layout_has_every_file_and_key_vhap_writes(exports):
    root = exports / "393_EXP-1-head"
    for name in ("transforms.json", "transforms_backup.json", "transforms_backup_flame.json",
                 "transforms_train.json", "transforms_val.json", "transforms_test.json", "canonical_flame_param.npz"):
        assert (root / name).is_file(), name
    database = json.loads((root / "transforms.json").read_text())
    assert database["timestep_indices"] == list(range(6)) and len(database["camera_indices"]) == 1
    for key in ("cx", "cy", "fl_x", "fl_y", "h", "w", "camera_angle_x", "camera_angle_y"):
        assert key in database
    for frame in database["frames"]:
        assert list(frame) == VHAP_FRAME_KEYS
        ti, ci = frame["timestep_index"], frame["camera_index"]
        assert frame["file_path"] == f"images/{ti:05d}_{ci:02d}.png" and (root / frame["file_path"]).is_file()
        assert frame["fg_mask_path"] == f"fg_masks/{ti:05d}_{ci:02d}.png" and (root / frame["fg_mask_path"]).is_file()
        assert frame["flame_param_path"] == f"flame_param/{ti:05d}.npz"
        assert frame["camera_angle_x"] == pytest.approx(2 * math.atan(frame["w"] / (2 * frame["fl_x"])))
    stride2 = json.loads((exports / "393_EXP-1-head_stride2" / "transforms.json").read_text())
    assert [f["timestep_index"] for f in stride2["frames"]] == [0, 1, 2]
    assert [f["timestep_index_original"] for f in stride2["frames"]] == [
        f["timestep_index_original"] for f in database["frames"]][::2]
    assert "flame_param_path" not in json.loads((root / "transforms_backup.json").read_text())["frames"][0]


def test_flame_npz_keys_shapes_and_dtypes_are_vhaps(exports):
    root = exports / "393_EXP-1-head"
    for path in sorted((root / "flame_param").glob("*.npz")) + [root / "canonical_flame_param.npz"]:
        arrays = dict(np.load(path))
        assert {key: value.shape for key, value in arrays.items()} == VHAP_NPZ, path.name
        assert not arrays["static_offset"].any()
    arrays = dict(np.load(root / "flame_param" / "00000.npz"))
    assert all(value.dtype == np.float32 for value in arrays.values())
    canonical = dict(np.load(root / "canonical_flame_param.npz"))
    np.testing.assert_array_equal(canonical["jaw_pose"], [[0.3, 0.0, 0.0]])
    assert not canonical["expr"].any() and not canonical["rotation"].any()


def test_vhap_nerf_dataset_reads_every_item(exports):
    items = vhap_nerf_dataset(exports / "393_EXP-1-head")
    assert len(items) == 6
    for item in items:
        assert item["image"].shape == (item["image_height"], item["image_width"], 3)
        assert item["fg_mask"].shape == (item["image_height"], item["image_width"])
        assert set(item["flame_param"]) == set(VHAP_NPZ)


def vhap_exporter_cameras(world_2_cam: np.ndarray, intrinsics: np.ndarray, height: int, width: int) -> list[dict]:
    """The camera keys VHAP's own export writes for calibrated OpenCV cameras: NeRSembleDataset.load_camera_params
    with its default camera_convention_conversion 'opencv->opengl' (camera y and z axes negated, K[1, 2] = H -
    K[1, 2]) and the c2w extrinsics the exporter asks for, then NeRFDatasetWriter.write's keys. Its
    align_cameras_to_axes (one rotation of the whole world) is left out: it changes no key's meaning."""
    rotation, translation = world_2_cam[:, :3, :3], world_2_cam[:, :3, 3]
    orientation = rotation.transpose(0, 2, 1).copy()
    location = orientation @ -translation[..., None]
    k = np.array(intrinsics, dtype=np.float64, copy=True)
    orientation[:, :3, [1, 2]] *= -1
    k[..., 1, 2] = height - k[..., 1, 2]
    cameras = []
    for index in range(len(world_2_cam)):
        c2w = np.concatenate([np.concatenate([orientation[index], location[index]], axis=1), [[0, 0, 0, 1]]])
        fl_x, fl_y = k[index, 0, 0], k[index, 1, 1]
        cameras.append({"cx": k[index, 0, 2], "cy": k[index, 1, 2], "fl_x": fl_x, "fl_y": fl_y, "h": height,
                        "w": width, "camera_angle_x": math.atan(width / (fl_x * 2)) * 2,
                        "camera_angle_y": math.atan(height / (fl_y * 2)) * 2, "transform_matrix": c2w})
    return cameras


def test_vhap_cameras_mean_what_vhaps_files_mean(converted, tmp_path):
    """Key for key what VHAP's exporter writes for the same cameras; VHAP's renderer projection and GaussianAvatars'
    reader put points on the store's pixels, both axes within 1e-3 px, on the 13 off-centre NVS cameras."""
    out = tmp_path / "388_GLASSES"
    run_cli("export-frames", converted, out, "--format", "vhap", "-p", 388, exit_code=0)
    nvs = storage.open_dataset(converted, schema.level_group(1, "nvs", 388, "GLASSES"))
    world_2_cam, intrinsics = nvs[schema.WORLD_2_CAM].values, nvs[schema.INTRINSICS].values
    height, width = int(nvs.attrs[schema.HEIGHT_ATTR]), int(nvs.attrs[schema.WIDTH_ATTR])
    vhap_wrote = vhap_exporter_cameras(world_2_cam, intrinsics, height, width)
    points = nvs_head_offset(world_2_cam) + np.random.default_rng(3).normal(scale=0.05, size=(200, 3))
    cameras = ga_read_cameras(out, "transforms.json")
    assert len({camera["frame"]["camera_index"] for camera in cameras}) > 1
    for camera in cameras:
        frame, index = camera["frame"], camera["frame"]["camera_index"]
        for key, value in vhap_wrote[index].items():
            np.testing.assert_allclose(frame[key], value, rtol=0, atol=1e-9, err_msg=key)
        expected, _ = project_opencv(points, world_2_cam[index], intrinsics[index])
        assert_lands_on_the_store_pixels(out, camera, points, expected, intrinsics[index])
    # the principal points are off-centre vertically: reading cy as OpenCV's would move points by h - 2 cy
    assert np.abs(height - 2 * intrinsics[:, 1, 2]).max() > 1


# ------------------------------------------------------------ FLAME converted exactly

def assert_same_pixels(exported_root: Path, cameras: list[dict], params: dict, flame, store_meshes) -> int:
    """Every vertex of the GaussianAvatars mesh projects where the store's mesh does, through VHAP's and
    GaussianAvatars' projections; the views checked."""
    checked = 0
    for camera in cameras:
        frame = camera["frame"]
        original = frame.get("timestep_index_original")
        if original is None:  # a union drops it: recover it from the source export's frame
            source_folder = exported_root / Path(frame["file_path"]).parent.parent
            source = json.loads((source_folder / "transforms.json").read_text())
            stem = Path(frame["file_path"]).stem
            original = next(f["timestep_index_original"] for f in source["frames"] if Path(f["file_path"]).stem == stem)
        vertices = ga_vertices(flame, params, camera["timestep"])
        stored_k = store_meshes["intrinsics"][frame["camera_index"]]
        expected, _ = project_opencv(
            store_meshes["vertices"][original], store_meshes["world_2_cam"][frame["camera_index"]], stored_k)
        assert_lands_on_the_store_pixels(exported_root, camera, vertices, expected, stored_k)
        checked += 1
    return checked


def test_gaussianavatars_meshes_land_on_the_stores_pixels(exports, reference_flame, store_meshes):
    root = exports / "393_EXP-1-head"
    assert ga_scene_type(root) == "DynamicNerf"
    scene = ga_dynamic_nerf(root)
    assert all(camera["image_path"].is_file() for split in ("train", "val", "test") for camera in scene[split])
    params = ga_load_meshes(scene["train_meshes"], scene["test_meshes"], 5023)
    views = scene["train"] + scene["val"] + scene["test"]
    assert assert_same_pixels(root, views, params, reference_flame, store_meshes) == 6


def test_a_validation_split_export_loads_in_gaussianavatars_and_vhap(converted, standin_dir, reference_flame,
                                                                      store_meshes, tmp_path):
    """The split's trailing frames: out of train, in val and test (where GaussianAvatars finds their FLAME)."""
    from nersemble_zarr.evaluation import ValidationSplit

    root = tmp_path / "393_EXP-1-head"
    split = ValidationSplit("mono_flame_avatar", trailing_frames=2)
    export_frames(converted, root, participant=MONO[0], sequence=MONO[1], validation=split, flame_dir=standin_dir,
                  workers=2)
    assert ga_scene_type(root) == "DynamicNerf"
    scene = ga_dynamic_nerf(root)
    assert [camera["timestep"] for camera in scene["train"]] == [0, 1, 2, 3]
    assert [camera["timestep"] for camera in scene["val"]] == [camera["timestep"] for camera in scene["test"]] == [4, 5]
    assert sorted(scene["train_meshes"]) == [0, 1, 2, 3] and sorted(scene["test_meshes"]) == [4, 5]
    assert all(camera["image_path"].is_file() for name in ("train", "val", "test") for camera in scene[name])
    params = ga_load_meshes(scene["train_meshes"], scene["test_meshes"], 5023)
    views = scene["train"] + scene["val"] + scene["test"]
    assert assert_same_pixels(root, views, params, reference_flame, store_meshes) == 8
    # VHAP's NeRFDataset reads the whole dataset and the train division (dense timesteps 0..N-1 each)
    assert len(vhap_nerf_dataset(root)) == 6 and len(vhap_nerf_dataset(root, "train")) == 4
    database = json.loads((root / "transforms.json").read_text())
    assert [f["timestep_index_original"] for f in database["frames"]] == sorted(store_meshes["vertices"])
    assert all(list(frame) == VHAP_FRAME_KEYS for frame in database["frames"])


def test_the_conversion_is_exact_for_many_cameras_and_poses(converted, standin_dir, reference_flame, cpu_model,
                                                            store_meshes):
    """Strong rotations and a non-unit scale, seen by the 13 NVS cameras: still the same pixels."""
    rng = np.random.default_rng(5)
    params = store_meshes["params"]
    posed = replace(params, rotation=rng.uniform(-0.8, 0.8, params.rotation.shape), scale=1.7,
                    jaw=rng.uniform(-0.3, 0.3, params.jaw.shape), neck=rng.uniform(-0.4, 0.4, params.neck.shape))
    expected_vertices = cpu_model.evaluate(posed).vertices.astype(np.float64)
    converted_flame = to_vhap(load_flame_assets(standin_dir), posed)
    nvs = storage.open_dataset(converted, schema.level_group(1, "nvs", 388, "GLASSES"))
    world_2_cam, intrinsics = nvs[schema.WORLD_2_CAM].values, nvs[schema.INTRINSICS].values
    # the synthetic NVS rig looks at its own head: move the mesh there so that every camera sees it
    offset = nvs_head_offset(world_2_cam) - expected_vertices.mean(axis=(0, 1))
    moved = converted_flame.translation + (offset / 1.7).astype(np.float32)
    converted_flame = replace(converted_flame, translation=moved)
    scaled = scale_world_to_camera(world_2_cam, converted_flame.world_scale)
    for t in range(posed.n_timesteps):
        ga = ga_vertices(reference_flame, converted_flame.timestep_arrays(t), 0)
        for camera in range(len(world_2_cam)):
            expected, _ = project_opencv(expected_vertices[t] + offset, world_2_cam[camera], intrinsics[camera])
            found, _ = project_opencv(ga, scaled[camera], intrinsics[camera])
            np.testing.assert_allclose(found, expected, rtol=0, atol=PIXEL_TOLERANCE)


def nvs_head_offset(world_2_cam: np.ndarray) -> np.ndarray:
    """A point every camera of a rig looks towards: least-squares closest point to the optical axes."""
    from nersemble_zarr.cameras import opencv_camera_to_world

    poses = opencv_camera_to_world(world_2_cam)
    origins, directions = poses[:, :3, 3], poses[:, :3, 2]
    system = sum(np.eye(3) - np.outer(d, d) for d in directions)
    target = sum((np.eye(3) - np.outer(d, d)) @ o for o, d in zip(origins, directions))
    return np.linalg.solve(system, target)


# ------------------------------------------------------------ union of sequences

def test_union_loads_in_gaussianavatars_with_consecutive_timesteps(exports, reference_flame, store_meshes):
    target = exports / "393_UNION"
    counts = combine_vhap_exports([exports / "393_EXP-1-head", exports / "393_EXP-1-head_stride2"], [], target)
    assert counts == {"transforms_train.json": 9, "transforms_val.json": 0, "transforms_test.json": 0}
    assert sorted(p.name for p in target.iterdir()) == [
        "canonical_flame_param.npz", "nersemble_union.json", "sequences_test.txt", "sequences_trainval.txt",
        "transforms_test.json", "transforms_train.json", "transforms_val.json"]
    train = json.loads((target / "transforms_train.json").read_text())
    assert train["timestep_indices"] == list(range(9))
    assert all(f["file_path"].startswith("../393_EXP-1-head") for f in train["frames"])
    assert ga_scene_type(target) == "DynamicNerf"
    scene = ga_dynamic_nerf(target)
    assert all(camera["image_path"].is_file() for camera in scene["train"])
    params = ga_load_meshes(scene["train_meshes"], scene["test_meshes"], 5023)
    assert assert_same_pixels(target, scene["train"], params, reference_flame, store_meshes) == 9


def test_union_refuses_exports_of_other_participants_or_folders(exports, tmp_path):
    with pytest.raises(ConfigError, match="same folder"):
        combine_vhap_exports([exports / "393_EXP-1-head"], [], tmp_path / "393_UNION")
    other = exports / "404_EXP-1-head"
    other.mkdir(exist_ok=True)
    with pytest.raises(ConfigError, match="different participants"):
        combine_vhap_exports([exports / "393_EXP-1-head", other], [], exports / "393_MIXED")
    assert not (exports / "393_MIXED").exists()


# ------------------------------------------------------------ nerfstudio

def test_nerfstudio_export_projects_like_the_store(converted, tmp_path):
    out = tmp_path / "ns"
    run_cli("export-frames", converted, out, "--format", "nerfstudio", "-p", 388, exit_code=0)
    frames = nerfstudio_frames(out)
    nvs = storage.open_dataset(converted, schema.level_group(1, "nvs", 388, "GLASSES"))
    serials = [str(s) for s in nvs[schema.SERIAL].values]
    world_2_cam, intrinsics = nvs[schema.WORLD_2_CAM].values, nvs[schema.INTRINSICS].values
    points = nvs_head_offset(world_2_cam) + np.random.default_rng(1).normal(scale=0.05, size=(200, 3))
    seen = set()
    for frame in frames:
        serial = Path(frame["file_path"]).stem.split("_", 1)[1]
        index = serials.index(serial)
        expected, _ = project_opencv(points, world_2_cam[index], intrinsics[index])
        np.testing.assert_allclose(nerfstudio_pixels(frame, points), expected, rtol=0, atol=1e-6)
        seen.add(serial)
    assert len(seen) == len(nvs.attrs[schema.VIDEO_SERIALS_ATTR]) > 1


def test_nerfstudio_follows_a_validation_split(converted, tmp_path):
    out = tmp_path / "ns"
    run_cli("split", tmp_path / "split.json", "-b", "nvs", "--cameras", "222200044", "--trailing-frames", "2",
            exit_code=0)
    run_cli("export-frames", converted, out, "--format", "nerfstudio", "-p", 388, "--split", tmp_path / "split.json",
            exit_code=0)
    nvs = storage.open_dataset(converted, schema.level_group(1, "nvs", 388, "GLASSES"))
    serials = [str(s) for s in nvs[schema.SERIAL].values]
    world_2_cam, intrinsics = nvs[schema.WORLD_2_CAM].values, nvs[schema.INTRINSICS].values
    points = nvs_head_offset(world_2_cam) + np.random.default_rng(2).normal(scale=0.05, size=(50, 3))

    def keys(frames):
        stems = [Path(frame["file_path"]).stem.split("_", 1) for frame in frames]
        return {(serial, int(timestep)) for timestep, serial in stems}

    splits = {name: nerfstudio_frames(out, name) for name in ("train", "val", "test")}
    held_out = {(s, t) for s in nvs.attrs[schema.VIDEO_SERIALS_ATTR] for t in (0, 3, 6, 9, 12, 15)
                if s == "222200044" or t in (12, 15)}
    assert keys(splits["val"]) == keys(splits["test"]) == held_out
    assert keys(splits["train"]) == keys(nerfstudio_frames(out)) - held_out and keys(splits["train"])
    for frame in splits["train"] + splits["val"]:
        index = serials.index(Path(frame["file_path"]).stem.split("_", 1)[1])
        expected, _ = project_opencv(points, world_2_cam[index], intrinsics[index])
        np.testing.assert_allclose(nerfstudio_pixels(frame, points), expected, rtol=0, atol=1e-6)


def test_vhap_export_without_the_flame_model_is_one_clear_error(converted, tmp_path):
    result = run_cli("export-frames", converted, tmp_path / "out", "--format", "vhap", "-p", 393, "-s", MONO[1],
                     "--flame-dir", tmp_path / "no-flame")
    assert result.exit_code != 0 and "flame2023.pkl" in result.output
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------ principal point centred for GaussianAvatars

def test_centred_principal_point_puts_every_vertex_within_half_a_pixel(converted, standin_dir, reference_flame,
                                                                         store_meshes, tmp_path):
    out = tmp_path / "393_centred"
    result = run_cli("export-frames", converted, out, "--format", "vhap", "-p", 393, "-s", MONO[1],
                     "--flame-dir", standin_dir, "--centre-principal-point", exit_code=0)
    assert "largest residual" in result.output
    scene = ga_dynamic_nerf(out)
    params = ga_load_meshes(scene["train_meshes"], scene["test_meshes"], 5023)
    plain = json.loads((out / "transforms.json").read_text())["frames"][0]
    camera_index = plain["camera_index"]
    stored_k = store_meshes["intrinsics"][camera_index]
    shift = export_shift(out, plain["camera_id"])
    assert np.any(shift != 0)  # the synthetic principal point is off-centre
    # the file's (cx, cy) in VHAP's meaning (cy flipped) is the store's moved by the shift
    np.testing.assert_allclose([plain["cx"], plain["h"] - plain["cy"]], stored_k[:2, 2] - shift, rtol=0, atol=1e-9)
    residual = stored_k[:2, 2] - shift - [(plain["w"] - 1) / 2, (plain["h"] - 1) / 2]
    assert np.all(np.abs(residual) <= 0.5)
    for camera in scene["train"] + scene["val"] + scene["test"]:
        original = camera["frame"]["timestep_index_original"]
        expected, _ = project_opencv(store_meshes["vertices"][original], store_meshes["world_2_cam"][camera_index],
                                     stored_k)
        vertices = ga_vertices(reference_flame, params, camera["timestep"])
        assert_lands_on_the_store_pixels(out, camera, vertices, expected, stored_k)
        # GaussianAvatars alone (principal point taken at the centre) is off by the residual only
        assert np.abs(ga_pixels(camera, vertices) - (expected - shift)).max() <= 0.5 + PIXEL_TOLERANCE
    # the pixels moved by the same whole-pixel shift
    dx, dy = shift.astype(int)
    image = imagecodecs.png_decode((out / plain["file_path"]).read_bytes())
    dataset = storage.open_dataset(converted, schema.level_group(1, "mono_flame_avatar", *MONO))
    position = [int(t) for t in dataset[schema.TIMESTEP].values].index(plain["timestep_index_original"])
    stored = dataset[schema.IMAGES][camera_index, position].values
    alpha = dataset[schema.ALPHA][camera_index, position].values
    stored = np.where((alpha > 0)[..., None], stored, 0)
    height, width = stored.shape[:2]
    np.testing.assert_array_equal(
        image[max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)],
        stored[max(0, dy):height - max(0, -dy), max(0, dx):width - max(0, -dx)])


def test_combine_vhap_command(exports):
    result = run_cli("combine-vhap", exports / "393_CLI", exports / "393_EXP-1-head",
                     "--test", exports / "393_EXP-1-head_stride2", exit_code=0)
    assert "transforms_train.json 6" in result.output and "transforms_test.json 3" in result.output
    test = json.loads((exports / "393_CLI" / "transforms_test.json").read_text())
    assert test["timestep_indices"] == [6, 7, 8]
    assert (exports / "393_CLI" / "sequences_test.txt").read_text() == "393_EXP-1-head_stride2\n"


@pytest.fixture(scope="module")
def level2_export(converted, standin_dir, tmp_path_factory) -> tuple[Path, Path]:
    """The mono sequence downsampled to level 2 (in a copy of the store) and exported as VHAP's layout."""
    import shutil

    from nersemble_zarr.levels import downsample

    store = Path(shutil.copytree(converted, tmp_path_factory.mktemp("level2") / "store.zarr"))
    downsample(store, [2], participants=[MONO[0]], sequences=[MONO[1]], workers=2)
    out = tmp_path_factory.mktemp("vhap-level2") / "393_EXP-1-head"
    export_frames(store, out, format="vhap", participant=MONO[0], sequence=MONO[1], level=2,
                  flame_dir=standin_dir, workers=2)
    return store, out


def test_level_2_export_lands_on_the_level_2_pixels(level2_export, reference_flame, store_meshes):
    store, out = level2_export
    level2 = storage.open_dataset(store, schema.level_group(2, "mono_flame_avatar", *MONO))
    scene = ga_dynamic_nerf(out)
    params = ga_load_meshes(scene["train_meshes"], scene["test_meshes"], 5023)
    views = scene["train"] + scene["val"] + scene["test"]
    assert len(views) == 6
    for camera in views:
        frame = camera["frame"]
        assert (frame["w"], frame["h"]) == (level2.attrs[schema.WIDTH_ATTR], level2.attrs[schema.HEIGHT_ATTR])
        image = imagecodecs.png_decode((out / frame["file_path"]).read_bytes())
        assert image.shape[:2] == (frame["h"], frame["w"])
        stored_k = level2[schema.INTRINSICS].values[frame["camera_index"]]
        expected, _ = project_opencv(store_meshes["vertices"][frame["timestep_index_original"]],
                                     level2[schema.WORLD_2_CAM].values[frame["camera_index"]], stored_k)
        vertices = ga_vertices(reference_flame, params, camera["timestep"])
        assert_lands_on_the_store_pixels(out, camera, vertices, expected, stored_k)


# ------------------------------------------------------------ render target and submission

def test_render_target_round_trip_to_a_valid_submission(converted, standin_dir, reference_flame, cpu_model,
                                                         tmp_path):
    target = tmp_path / "393_FREE"
    run_cli("export-frames", converted, target, "--format", "vhap", "--render-target", "-p", 393, "-s", "FREE",
            "--flame-dir", standin_dir, exit_code=0)
    # GaussianAvatars' readDynamicNerfInfo with --target_path: target train + val + test cameras, target meshes
    views = ga_read_cameras(target, "transforms_train.json") + ga_read_cameras(target, "transforms_val.json") \
        + ga_read_cameras(target, "transforms_test.json")
    meshes = {**ga_read_meshes(target, "transforms_train.json"), **ga_read_meshes(target, "transforms_test.json")}
    params = ga_load_meshes(meshes, {}, 5023)
    free = storage.open_dataset(converted, schema.level_group(1, "mono_flame_avatar", 393, "FREE"))
    store_vertices = cpu_model.evaluate(flame_parameters(free)).vertices.astype(np.float64)
    timesteps = [int(t) for t in free[schema.TIMESTEP].values]
    serials = [str(s) for s in free[schema.SERIAL].values]
    submitted = set(catalogue.submission_serials("mono_flame_avatar"))  # mono: the train camera and the hold-outs
    assert {camera["frame"]["camera_id"] for camera in views} == submitted
    assert len(views) == len(submitted) * len(timesteps)
    for camera in views:
        frame = camera["frame"]
        assert imagecodecs.png_decode(camera["image_path"].read_bytes()).shape == (frame["h"], frame["w"], 3)
        index = serials.index(frame["camera_id"])
        stored_k = free[schema.INTRINSICS].values[index]
        expected, _ = project_opencv(store_vertices[timesteps.index(frame["timestep_index_original"])],
                                     free[schema.WORLD_2_CAM].values[index], stored_k)
        vertices = ga_vertices(reference_flame, params, camera["timestep"])
        assert_lands_on_the_store_pixels(target, camera, vertices, expected, stored_k)
    # render.py's output layout: MODEL/<target name>/ours_<iteration>/renders/{i:05d}.png, one per view
    model = tmp_path / "model"
    renders = model / target.name / "ours_30000" / "renders"
    renders.mkdir(parents=True)
    for i, camera in enumerate(views):
        picture = np.full((camera["height"], camera["width"], 3), 40 + 30 * (i % 6), dtype=np.uint8)
        (renders / f"{i:05d}.png").write_bytes(imagecodecs.png_encode(picture))
    size = f"{views[0]['width']}x{views[0]['height']}"
    zip_path = tmp_path / "submission.zip"
    run_cli("export-submission", model, zip_path, "-b", "mono_flame_avatar", "--store", converted, "--partial",
            "--resolution", size, "--render-target", target, exit_code=0)
    run_cli("validate-submission", zip_path, "-b", "mono_flame_avatar", "--store", converted, "--partial",
            "--resolution", size, exit_code=0)
    (renders / f"{len(views) - 1:05d}.png").unlink()
    result = run_cli("export-submission", model, tmp_path / "other.zip", "-b", "mono_flame_avatar", "--store",
                     converted, "--partial", "--resolution", size, "--render-target", target)
    assert result.exit_code != 0 and "render the target again" in result.output
    assert not (tmp_path / "other.zip").exists()


def test_renders_of_a_centred_render_target_are_shifted_back(converted, standin_dir, reference_flame, cpu_model,
                                                             tmp_path):
    from nersemble_zarr.submission.gaussian_avatars import rendered_predictions

    target = tmp_path / "393_FREE"
    export_frames(converted, target, format="vhap", participant=393, sequence="FREE", render_target=True,
                  centre_principal_point=True, flame_dir=standin_dir, workers=1)
    views = ga_read_cameras(target, "transforms_train.json")
    free = storage.open_dataset(converted, schema.level_group(1, "mono_flame_avatar", 393, "FREE"))
    serials = [str(s) for s in free[schema.SERIAL].values]
    renders = tmp_path / "model" / target.name / "ours_7" / "renders"
    renders.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 255, (c["height"], c["width"], 3), dtype=np.uint8) for c in views]
    for i, picture in enumerate(pictures):
        (renders / f"{i:05d}.png").write_bytes(imagecodecs.png_encode(picture))
    predictions = rendered_predictions(tmp_path / "model", [target])
    shifts = []
    for serial in {camera["frame"]["camera_id"] for camera in views}:
        mine = [(c["frame"]["timestep_index_original"], i) for i, c in enumerate(views)
                if c["frame"]["camera_id"] == serial]
        frame = views[mine[0][1]]["frame"]
        stored = free[schema.INTRINSICS].values[serials.index(serial)]
        dx, dy = export_shift(target, serial).astype(int)
        np.testing.assert_allclose([frame["cx"], frame["h"] - frame["cy"]], stored[:2, 2] - [dx, dy], atol=1e-9)
        shifts.append((dx, dy))
        video = np.asarray(predictions[(393, "FREE", serial)])
        assert video.shape[0] == len(mine)
        for position, (_, render_index) in enumerate(sorted(mine)):
            picture, h, w = pictures[render_index], frame["h"], frame["w"]
            # the render sees stored pixel (x, y) at (x - dx, y - dy): shifting back puts it at (x, y) again
            np.testing.assert_array_equal(
                video[position][max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)],
                picture[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)])
    assert any(shift != (0, 0) for shift in shifts)


@pytest.mark.parametrize("format_", ["vhap", "nerfstudio"])
def test_a_sequence_without_images_is_refused_with_a_hint(converted, standin_dir, tmp_path, format_):
    result = run_cli("export-frames", converted, tmp_path / "out", "--format", format_, "-p", 393, "-s", "FREE",
                     "--flame-dir", standin_dir)
    assert result.exit_code != 0 and "no view with an image" in result.output
    assert not (tmp_path / "out").exists()
    if format_ == "vhap":
        assert "--render-target" in result.output
