"""export-frames (VHAP's layout, the default): the exported cameras re-project the synthetic head onto the exported
PNGs, pixels equal the store's, original frame indices survive a stride, splits, FLAME files, resume, the
deprecated ``nerf`` alias, and bad input. tests/test_export_vhap.py reads the layout the way its consumers do."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner
from scipy.spatial.transform import Rotation

from nersemble_zarr import catalogue, schema
from nersemble_zarr.cameras import opengl_camera_to_world, project_opengl
from nersemble_zarr.cli.main import main as cli
from nersemble_zarr.convert import convert
from nersemble_zarr.errors import CatalogueError, ConfigError, StoreError
from nersemble_zarr.export_frames import export_frames
from nersemble_zarr.levels import downsample
from nersemble_zarr.synthetic import SyntheticConfig, model_to_world, tracking
from nersemble_zarr.synthetic.head import ellipsoid_normals, ellipsoid_points

NVS = ("nvs", 388, "GLASSES")
MONO = ("mono_flame_avatar", 393, "EXP-1-head")


@pytest.fixture(scope="module")
def store(converted, tmp_path_factory) -> Path:
    """The tiny synthetic benchmark converted, with resolution level 2."""
    path = Path(shutil.copytree(converted, tmp_path_factory.mktemp("export") / "store.zarr"))
    downsample(path, [2], workers=2)
    return path


@pytest.fixture(scope="module")
def nvs_export(store, tmp_path_factory) -> Path:
    """NVS 388 at level 2, every 2nd stored frame, on black."""
    out = tmp_path_factory.mktemp("nvs-export")
    export_frames(store, out, participant=388, level=2, stride=2, workers=2)
    return out


def load(out: Path, name: str = "transforms.json") -> dict:
    return json.loads((out / name).read_text())


def read_png(path: Path) -> np.ndarray:
    return imagecodecs.png_decode(path.read_bytes())


def store_frames(store: Path, level: int, key, serial: str, timestep: int) -> tuple[np.ndarray, np.ndarray]:
    group = zarr.open_group(store, path=schema.level_group(level, *key), mode="r", use_consolidated=False)
    serial_index = [str(s) for s in group[schema.SERIAL][:]].index(serial)
    position = list(group[schema.TIMESTEP][:]).index(timestep)
    return group[schema.IMAGES][serial_index, position], group[schema.ALPHA][serial_index, position]


def head_points(key, timestep: int, cam_2_world_gl: np.ndarray, n: int = 300) -> np.ndarray:
    """Synthetic head surface points at an ORIGINAL frame index that face the camera squarely (world space)."""
    params = tracking(SyntheticConfig.tiny(), *key)
    index = list(params["frames"]).index(timestep)
    model = ellipsoid_points(n, np.random.default_rng(timestep))
    rotation = params["rotation_matrices"][index].astype(np.float64)
    world = model_to_world(model, rotation, params["translation"][index].astype(np.float64), params["scale"])
    towards_camera = cam_2_world_gl[:3, 3] - world
    towards_camera /= np.linalg.norm(towards_camera, axis=1, keepdims=True)
    facing = np.einsum("ij,ij->i", ellipsoid_normals(model) @ rotation.T, towards_camera) > 0.6
    return world[facing]


def intrinsics_of(entry: dict) -> np.ndarray:
    """The OpenCV matrix of a VHAP frame: VHAP's files hold the principal point's y flipped (h - cy)."""
    return np.array([[entry["fl_x"], 0.0, entry["cx"]], [0.0, entry["fl_y"], entry["h"] - entry["cy"]],
                     [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------- geometry and pixels
def test_exported_cameras_reproject_the_head_onto_the_exported_pngs(nvs_export):
    frames = load(nvs_export)["frames"]
    assert len(frames) == 13 * 3
    for entry in frames:
        mask = read_png(nvs_export / entry["fg_mask_path"])
        image = read_png(nvs_export / entry["file_path"])
        assert mask.shape == (entry["h"], entry["w"]) == (80, 55) and image.shape == (80, 55, 3)
        cam_2_world = np.array(entry["transform_matrix"])
        points = head_points(NVS, entry["timestep_index_original"], cam_2_world)
        assert len(points) > 20
        pixels, depth = project_opengl(points, cam_2_world, intrinsics_of(entry))
        assert (depth > 0).all()
        columns, rows = np.round(pixels).astype(int).T
        assert (mask[rows, columns] > 0).all(), entry["file_path"]
        assert (image[rows, columns].max(axis=-1) > 0).all()
        # 14 cm above the head centre (radius 10.5 cm) is background in the mask and black in the image
        centre = tracking(SyntheticConfig.tiny(), *NVS)["translation"][entry["timestep_index_original"] // 3]
        above = centre.astype(np.float64) + 0.14 * cam_2_world[:3, 1]  # the camera's up axis (OpenGL y)
        (column, row), _ = project_opengl(above, cam_2_world, intrinsics_of(entry))
        assert mask[round(row), round(column)] == 0 and image[round(row), round(column)].max() == 0


def test_pngs_and_cameras_hold_the_store_values(store, nvs_export):
    entry = load(nvs_export, "transforms_train.json")["frames"][5]
    images, alpha = store_frames(store, 2, NVS, entry["camera_id"], entry["timestep_index_original"])
    level = xr.open_zarr(store, group=schema.level_group(2, *NVS), consolidated=False)
    level = level.sel(serial=entry["camera_id"])
    np.testing.assert_allclose(intrinsics_of(entry), level.intrinsics.values)  # OpenCV K of the level
    np.testing.assert_allclose(np.array(entry["transform_matrix"]), opengl_camera_to_world(level.world_2_cam.values))
    np.testing.assert_array_equal(read_png(nvs_export / entry["fg_mask_path"]), alpha)
    np.testing.assert_array_equal(read_png(nvs_export / entry["file_path"]), np.where(alpha[..., None] > 0, images, 0))


@pytest.mark.parametrize("background", ["white", "none"])
def test_backgrounds(store, tmp_path, background):
    export_frames(store, tmp_path, participant=388, serials=("222200040",), stride=3, background=background)
    entry = load(tmp_path)["frames"][0]
    images, alpha = store_frames(store, 1, NVS, "222200040", entry["timestep_index_original"])
    picture = read_png(tmp_path / entry["file_path"]).astype(np.int64)
    opaque, clear = alpha == 255, alpha == 0
    assert opaque.sum() > 100 and clear.sum() > 100
    if background == "white":
        assert picture.shape[-1] == 3 and (picture[clear] == 255).all()
        np.testing.assert_array_equal(picture[opaque], images[opaque])
        partial = (alpha > 0) & (alpha < 255)
        np.testing.assert_array_equal(
            picture[partial], np.minimum(images[partial].astype(int) + 255 - alpha[partial, None], 255)
        )
    else:
        assert picture.shape[-1] == 4
        np.testing.assert_array_equal(picture[..., 3], alpha)
        assert (picture[clear][:, :3] == 0).all()
        # straight colour * alpha gives back the stored premultiplied colour (where the video kept colour <= alpha)
        valid = (alpha > 0) & (images.max(axis=-1) <= alpha)
        assert valid.sum() > 1000
        premultiplied = picture[valid][:, :3] * alpha[valid, None] / 255
        assert np.abs(premultiplied - images[valid]).max() <= 0.5


# ---------------------------------------------------------------- frames, indices, splits
def test_stride_keeps_original_frame_indices_and_splits_are_vhaps(nvs_export):
    everything = load(nvs_export)
    stored = [0, 3, 6, 9, 12, 15]  # synthetic timesteps: every 3rd original frame
    assert sorted({frame["timestep_index_original"] for frame in everything["frames"]}) == stored[::2]
    assert sorted({frame["timestep_index"] for frame in everything["frames"]}) == everything["timestep_indices"] \
        == [0, 1, 2]
    # only views with an image: the hold-out cameras have no video (export them with render_target)
    assert {f["camera_id"] for f in everything["frames"]} == set(catalogue.NVS_TRAIN_SERIALS)
    for frame in everything["frames"]:
        assert catalogue.SERIALS[frame["camera_index"]] == frame["camera_id"]
        assert frame["file_path"] == f"images/{frame['timestep_index']:05d}_{frame['camera_index']:02d}.png"
        assert frame["timestep_id"] == f"{frame['timestep_index_original']:05d}"
    assert everything["camera_indices"] == sorted(catalogue.SERIALS.index(s) for s in catalogue.NVS_TRAIN_SERIALS)
    # VHAP's split_json: ceil(70% of 3) = 3 timesteps train; camera 8 (a hold-out camera here) is absent, so the
    # last camera is the validation camera
    train, val, test = (load(nvs_export, f"transforms_{name}.json") for name in ("train", "val", "test"))
    last = everything["camera_indices"][-1]
    assert val["camera_indices"] == [last] and {f["camera_index"] for f in val["frames"]} == {last}
    assert last not in train["camera_indices"] and len(train["frames"]) == 12 * 3 and len(val["frames"]) == 3
    assert test["frames"] == [] and train["timestep_indices"] == val["timestep_indices"] == [0, 1, 2]
    names = sorted(os.listdir(nvs_export / "images"))
    assert len(names) == 13 * 3 and names[0].startswith("00000_") and names[-1].startswith("00002_")
    assert not any(name.startswith(".") for name in names)


def test_mono_exports_flame_parameters_per_original_frame(store, standin_dir, tmp_path):
    summary = export_frames(store, tmp_path, participant=393, sequence="EXP-1-head", level=2, stride=2,
                            flame_dir=standin_dir)
    assert summary.flame_files_written == 3
    dataset = xr.open_zarr(store, group=schema.sequence_group(*MONO), consolidated=False)
    frames = load(tmp_path)["frames"]
    assert {f["camera_id"] for f in frames} == {catalogue.MONO_TRAIN_SERIAL}
    assert [f["timestep_index_original"] for f in frames] == [0, 6, 12]
    for frame in frames:
        parameters = np.load(tmp_path / frame["flame_param_path"])
        position = list(dataset.timestep.values).index(frame["timestep_index_original"])
        assert frame["flame_param_path"] == f"flame_param/{frame['timestep_index']:05d}.npz"
        np.testing.assert_array_equal(parameters["expr"][0], dataset.expression.values[position])
        np.testing.assert_array_equal(parameters["jaw_pose"][0], dataset.jaw.values[position])
        np.testing.assert_allclose(Rotation.from_rotvec(parameters["rotation"][0]).as_matrix(),
                                   dataset.rotation_matrices.values[position], atol=1e-6)
        np.testing.assert_array_equal(parameters["shape"], dataset["shape"].values)
    assert sorted(os.listdir(tmp_path / "flame_param")) == ["00000.npz", "00001.npz", "00002.npz"]


def test_a_test_sequence_without_video_exports_cameras_and_tracking_as_a_render_target(store, standin_dir, tmp_path):
    with pytest.raises(ConfigError, match="no view with an image.*--render-target"):
        export_frames(store, tmp_path / "plain", participant=393, sequence="FREE", flame_dir=standin_dir)
    summary = export_frames(store, tmp_path / "target", participant=393, sequence="FREE", render_target=True,
                            flame_dir=standin_dir)
    assert summary.frames_written == 0 and summary.transforms["transforms_train.json"] == 6 * 4
    assert summary.transforms["transforms_test.json"] == 0 and summary.flame_files_written == 6
    views = load(tmp_path / "target", "transforms_train.json")["frames"]
    assert all(Path(frame["file_path"]).name.startswith("render_target_") for frame in views)
    assert {frame["camera_id"] for frame in views} == {catalogue.MONO_TRAIN_SERIAL, *catalogue.MONO_HOLD_OUT_SERIALS}


def test_a_validation_split_moves_its_frames_out_of_train(store, tmp_path):
    from nersemble_zarr.evaluation import ValidationSplit

    split = ValidationSplit("nvs", serials=("222200044",), trailing_frames=2)
    export_frames(store, tmp_path, participant=388, level=2, validation=split, workers=2)
    keys = {name: {(f["camera_id"], f["timestep_index_original"]) for f in load(tmp_path, name)["frames"]}
            for name in ("transforms.json", "transforms_train.json", "transforms_val.json", "transforms_test.json")}
    held_out = {(s, t) for s in catalogue.NVS_TRAIN_SERIALS for t in (0, 3, 6, 9, 12, 15)
                if s == "222200044" or t in (12, 15)}
    assert keys["transforms_val.json"] == keys["transforms_test.json"] == held_out
    assert keys["transforms_train.json"] == keys["transforms.json"] - held_out and len(keys["transforms.json"]) == 13 * 6
    val = load(tmp_path, "transforms_val.json")
    assert val["timestep_indices"] == list(range(6)) and len(val["camera_indices"]) == 13
    with pytest.raises(ConfigError, match="holds out none of the frames exported from level_2/nvs/388/GLASSES"):
        export_frames(store, tmp_path / "none", participant=388, level=2, serials=("222200042",),
                      validation=ValidationSplit("nvs", serials=("222200044",)))
    with pytest.raises(ConfigError, match="holds out every frame exported from level_2/nvs/388/GLASSES"):
        export_frames(store, tmp_path / "all", participant=388, level=2, serials=("222200044",),
                      validation=ValidationSplit("nvs", serials=("222200044",)))
    assert not (tmp_path / "none").exists() and not (tmp_path / "all").exists()


# ---------------------------------------------------------------- resume and bad input
def test_rerun_writes_only_missing_files(store, nvs_export, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(nvs_export, out)
    images = sorted((out / "images").iterdir())
    removed, kept = images[:4], images[4]
    (out / "fg_masks" / images[5].name).unlink()  # a frame whose mask is missing is written again too
    expected = {path.name: path.read_bytes() for path in removed}
    for path in removed:
        path.unlink()
    stale = out / "images" / f".{removed[0].name}.part"
    stale.write_bytes(b"partial")  # what a killed run leaves
    before = kept.stat().st_mtime_ns
    summary = export_frames(store, out, participant=388, level=2, stride=2, workers=2)
    assert summary.frames_written == 5 and summary.frames_skipped == 13 * 3 - 5
    assert {path.name: (out / "images" / path.name).read_bytes() for path in removed} == expected
    assert kept.stat().st_mtime_ns == before and not stale.exists()
    assert (out / "fg_masks" / images[5].name).exists()


def test_bad_requests_name_the_problem(store, nvs_export, tmp_path):
    with pytest.raises(StoreError, match="no level 4"):
        export_frames(store, tmp_path / "a", participant=388, level=4)
    with pytest.raises(ConfigError, match="3 matching sequences"):
        export_frames(store, tmp_path / "b")
    with pytest.raises(StoreError, match="no sequence for participant 422"):
        export_frames(store, tmp_path / "c", participant=422)
    with pytest.raises(CatalogueError, match="Unknown camera serial"):
        export_frames(store, tmp_path / "d", participant=388, serials=("123",))
    with pytest.raises(CatalogueError, match="not among the cameras"):
        export_frames(store, tmp_path / "e", participant=393, sequence="FREE", serials=("222200042",))
    with pytest.raises(ConfigError, match="Stride 0"):
        export_frames(store, tmp_path / "f", participant=388, stride=0)
    with pytest.raises(ConfigError, match="Background 'grey'"):
        export_frames(store, tmp_path / "g", participant=388, background="grey")
    with pytest.raises(ConfigError, match="Export format 'colmap' is invalid; expected one of vhap, nerfstudio"):
        export_frames(store, tmp_path / "h", participant=388, format="colmap")
    with pytest.raises(ConfigError, match="render target is written in VHAP's layout only"):
        export_frames(store, tmp_path / "i", participant=393, sequence="FREE", format="nerfstudio", render_target=True)
    with pytest.raises(ConfigError, match="already holds an export"):
        export_frames(store, nvs_export, participant=388, level=2, background="white")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an export folder"):
        export_frames(store, foreign, participant=388)


def test_an_incomplete_camera_is_refused(store, tmp_path):
    copy = tmp_path / "store.zarr"
    shutil.copytree(store, copy)
    zarr.open_array(copy, path=f"{schema.level_group(2, *NVS)}/alpha_converted", mode="r+")[1] = False
    with pytest.raises(StoreError, match="Camera 222200044 of level_2/nvs/388/GLASSES is not completely written"):
        export_frames(copy, tmp_path / "out", participant=388, level=2)
    export_frames(copy, tmp_path / "out", participant=388, level=2, serials=("222200042",))  # other cameras are fine


def test_cli_export_frames(store, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    arguments = ["export-frames", str(store), str(out), "-p", "388", "--level", "2", "--stride", "5",
                 "--serials", "222200042,222200046", "--background", "white", "-j", "1"]
    result = runner.invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    assert "2 frame(s) written, 0 already there" in result.output and "Warning" not in result.output
    frames = load(out)["frames"]  # 222200046 is a hold-out camera without video: not a view of the layout
    assert [(f["camera_id"], f["timestep_index_original"]) for f in frames] == [("222200042", 0), ("222200042", 15)]
    assert sorted(os.listdir(out / "images")) == ["00000_00.png", "00001_00.png"]
    assert "0 frame(s) written, 2 already there" in runner.invoke(cli, arguments).output
    result = runner.invoke(cli, ["export-frames", str(store), str(tmp_path / "x"), "-p", "388", "--level", "3"])
    assert result.exit_code == 1 and result.output.startswith("Error: The store has no level 3")
    assert "Traceback" not in result.output


def test_format_nerf_is_a_deprecated_alias_of_vhap(store, nvs_export, tmp_path):
    arguments = ["export-frames", str(store), str(tmp_path / "cli"), "-p", "388", "--level", "2", "--stride", "2",
                 "-j", "1", "--format", "nerf"]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "deprecated" in line]
    assert warnings == ["Warning: --format nerf is deprecated and writes --format vhap (VHAP's layout, which "
                        "GaussianAvatars reads); the old nerf layout is no longer written."]
    assert "deprecated" not in result.stdout
    assert load(tmp_path / "cli", "nersemble_export.json")["format"] == "vhap"
    for name in ("transforms.json", "transforms_train.json", "transforms_val.json", "transforms_test.json"):
        assert load(tmp_path / "cli", name) == load(nvs_export, name)
    assert sorted(os.listdir(tmp_path / "cli" / "images")) == sorted(os.listdir(nvs_export / "images"))
    with pytest.warns(FutureWarning, match="--format nerf is deprecated and writes --format vhap"):
        export_frames(store, tmp_path / "python", format="nerf", participant=388, level=2, stride=5)
    assert load(tmp_path / "python", "nersemble_export.json")["format"] == "vhap"


def test_a_sequence_without_alpha_gets_plain_levels_and_black_only_exports(synthetic_root, standin_dir, tmp_path):
    root = tmp_path / "fetched"
    shutil.copytree(synthetic_root / "mono_flame_avatar", root / "mono_flame_avatar")
    shutil.rmtree(root / "mono_flame_avatar" / "393" / "sequences" / "EXP-1-head" / "alpha_maps")
    path = tmp_path / "store.zarr"
    convert(root, path, sequences=("EXP-1-head",), workers=1)
    downsample(path, [2], workers=1)
    full = xr.open_zarr(path, group=schema.sequence_group(*MONO), consolidated=False)
    level = xr.open_zarr(path, group=schema.level_group(2, *MONO), consolidated=False)
    assert "alpha" not in level and bool(level.images_converted.sel(serial=catalogue.MONO_TRAIN_SERIAL))
    source = full.images.sel(serial=catalogue.MONO_TRAIN_SERIAL).values.astype(np.float64)
    expected = np.floor(source.reshape(6, 26, 2, 26, 2, 3).mean(axis=(2, 4)) + 0.5)
    np.testing.assert_array_equal(level.images.sel(serial=catalogue.MONO_TRAIN_SERIAL).values, expected)
    with pytest.raises(ConfigError, match="has no alpha"):
        export_frames(path, tmp_path / "white", participant=393, sequence="EXP-1-head", background="white",
                      flame_dir=standin_dir)
    out = tmp_path / "black"
    export_frames(path, out, participant=393, sequence="EXP-1-head", level=2, flame_dir=standin_dir)
    entry = load(out)["frames"][0]
    assert "fg_mask_path" not in entry and not (out / "fg_masks").exists()
    np.testing.assert_array_equal(read_png(out / entry["file_path"]), expected[0])
