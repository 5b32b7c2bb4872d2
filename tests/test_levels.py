"""Resolution levels: exact intrinsics, alpha-aware area averaging, the store layout, content at every level,
resume and bad input."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

from nersemble_zarr import schema
from nersemble_zarr.cameras import opencv_camera_to_world, project_opencv
from nersemble_zarr.cli.main import main as cli
from nersemble_zarr.errors import ConfigError, StoreError
from nersemble_zarr.levels import check_levels, downsample, downsample_frames, level_size, scale_intrinsics
from nersemble_zarr.levels.write import plan_steps
from nersemble_zarr.synthetic import model_to_world, tracking
from nersemble_zarr.synthetic.head import ellipsoid_normals, ellipsoid_points

NVS = ("nvs", 388, "GLASSES")
MONO = ("mono_flame_avatar", 393, "EXP-1-head")
LEVELS = (2, 4)


@pytest.fixture(scope="module")
def leveled(converted, tmp_path_factory) -> Path:
    """The tiny synthetic benchmark converted, with levels 2 and 4 (NVS frames 110x160: level 4 crops 2 columns)."""
    store = Path(shutil.copytree(converted, tmp_path_factory.mktemp("levels") / "store.zarr"))
    downsample(store, LEVELS, workers=2)
    return store


def open_tree(store: Path) -> xr.DataTree:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_datatree(store, engine="zarr", chunks={})


def read_level(store: Path, level: int, key=NVS) -> xr.Dataset:
    return open_tree(store)[schema.level_group(level, *key)].to_dataset().load()


def visible_head_points(key, index: int, world_2_cam: np.ndarray, n: int = 400) -> np.ndarray:
    """World points of the synthetic head surface at frame ``index`` that face the camera squarely."""
    from nersemble_zarr.synthetic import SyntheticConfig

    params = tracking(SyntheticConfig.tiny(), *key)
    model = ellipsoid_points(n, np.random.default_rng(index))
    rotation = params["rotation_matrices"][index].astype(np.float64)
    world = model_to_world(model, rotation, params["translation"][index].astype(np.float64), params["scale"])
    normals = ellipsoid_normals(model) @ rotation.T
    towards_camera = opencv_camera_to_world(world_2_cam)[:3, 3] - world
    towards_camera /= np.linalg.norm(towards_camera, axis=1, keepdims=True)
    return world[np.einsum("ij,ij->i", normals, towards_camera) > 0.6]


def tracking_centre(key, index: int) -> np.ndarray:
    """World position of the synthetic head's centre (the model origin) at frame ``index``."""
    from nersemble_zarr.synthetic import SyntheticConfig

    return tracking(SyntheticConfig.tiny(), *key)["translation"][index].astype(np.float64)


# ---------------------------------------------------------------- intrinsics and resampling (pure functions)
def test_scaled_intrinsics_map_every_pixel_centre_to_the_box_centre():
    rng = np.random.default_rng(1)
    intrinsics = np.array([[900.0, 0.7, 540.3], [0.0, 910.0, 801.9], [0.0, 0.0, 1.0]])
    points = np.c_[rng.uniform(-0.2, 0.2, (50, 2)), rng.uniform(0.8, 1.2, 50)]
    pixels = points @ intrinsics.T
    pixels = pixels[:, :2] / pixels[:, 2:]
    for factor in (2, 3, 4):
        scaled = points @ scale_intrinsics(intrinsics, factor).T
        # level pixel u' sits at source coordinate s * u' + (s - 1) / 2, the centre of its box
        np.testing.assert_allclose(factor * scaled[:, :2] / scaled[:, 2:] + (factor - 1) / 2, pixels, atol=1e-9)
    np.testing.assert_allclose(scale_intrinsics(scale_intrinsics(intrinsics, 2), 2), scale_intrinsics(intrinsics, 4))
    assert scale_intrinsics(intrinsics, 2)[0, 2] == pytest.approx((540.3 + 0.5) / 2 - 0.5)


def test_box_average_rounds_and_crops_the_bottom_right_remainder():
    images = np.arange(5 * 5 * 3, dtype=np.uint8).reshape(1, 5, 5, 3)
    alpha = np.full((1, 5, 5), 255, dtype=np.uint8)
    level_images, level_alpha = downsample_frames(images, alpha, 2)
    assert level_images.shape == (1, 2, 2, 3) and level_alpha.shape == (1, 2, 2)
    expected = np.floor(images[0, :4, :4].reshape(2, 2, 2, 2, 3).mean(axis=(1, 3)) + 0.5)
    np.testing.assert_array_equal(level_images[0], expected)
    assert (level_alpha == 255).all()
    assert level_size(5, 5, 2) == (2, 2) and level_size(160, 110, 4) == (40, 27)
    plain, no_alpha = downsample_frames(images, None, 2)
    assert no_alpha is None
    np.testing.assert_array_equal(plain, level_images)


def test_alpha_aware_average_of_premultiplied_frames():
    """Store RGB is colour * alpha; a level must equal (sum(C a) / sum(a)) * mean(a): the alpha-weighted colour
    of the box, premultiplied by the box's alpha - never colour bleeding in from the black background."""
    rng = np.random.default_rng(2)
    colour = rng.uniform(0, 255, (3, 32, 32, 3))
    alpha = rng.choice([0, 0, 40, 128, 255], size=(3, 32, 32)).astype(np.uint8)
    alpha[:, :4, :4] = 0  # a fully transparent box
    images = np.round(colour * alpha[..., None] / 255).astype(np.uint8)
    level_images, level_alpha = downsample_frames(images, alpha, 4)

    def boxes(values: np.ndarray) -> np.ndarray:
        return values.reshape(3, 8, 4, 8, 4, *values.shape[3:]).sum(axis=(2, 4))

    weights = boxes(alpha.astype(np.float64))
    straight = boxes(colour * alpha[..., None]) / np.maximum(weights, 1)[..., None]
    expected = straight * (weights / 16 / 255)[..., None]
    assert np.abs(level_images - expected).max() <= 1.0
    np.testing.assert_array_equal(level_alpha, np.floor(weights / 16 + 0.5))
    assert (level_images[level_alpha == 0] == 0).all() and (level_alpha[:, 0, 0] == 0).all()
    # averaging the stored values once more with alpha (the straight-colour recipe) would darken edges
    doubly_weighted = boxes(images * alpha[..., None].astype(np.float64)) / np.maximum(weights, 1)[..., None]
    assert np.abs(doubly_weighted - expected).max() > 5


def test_each_level_is_computed_from_the_coarsest_level_it_divides():
    assert plan_steps([2, 4, 8], set()) == ((2, 1), (4, 2), (8, 4))
    assert plan_steps([3, 4], set()) == ((3, 1), (4, 1))
    assert plan_steps([8], {2}) == ((8, 2),)
    assert plan_steps([6], {2, 3}) == ((6, 3),)
    # frames without alpha (the v2 dataset): every level from level 1, as convert --level stores it
    assert plan_steps([2, 4, 8], set(), chained=False) == ((2, 1), (4, 1), (8, 1))
    assert plan_steps([8], {2, 4}, chained=False) == ((8, 1),)


def test_levels_are_checked():
    assert check_levels([4, 2, np.int64(4)]) == (2, 4)
    for bad in ([1], [0], [2.5], [True], []):
        with pytest.raises(ConfigError):
            check_levels(bad)


# ---------------------------------------------------------------- the store
def test_levels_open_with_plain_xarray_and_mirror_the_sequence(leveled):
    tree = open_tree(leveled)
    full = tree[schema.sequence_group(*NVS)].to_dataset()
    for level in LEVELS:
        dataset = tree[schema.level_group(level, *NVS)].to_dataset()
        height, width = level_size(full.sizes["y"], full.sizes["x"], level)
        assert dataset.images.shape == (16, 6, height, width, 3) and dataset.alpha.shape == (16, 6, height, width)
        assert (dataset.attrs["level"], dataset.attrs["height"], dataset.attrs["width"]) == (level, height, width)
        assert dataset.attrs["cropped_columns_right"] == full.sizes["x"] - width * level
        np.testing.assert_array_equal(dataset.timestep, full.timestep)
        np.testing.assert_array_equal(dataset.serial, full.serial)
        np.testing.assert_array_equal(dataset.split, full.split)
        np.testing.assert_array_equal(dataset.world_2_cam, full.world_2_cam)
        np.testing.assert_allclose(dataset.intrinsics, scale_intrinsics(full.intrinsics.values, level))
        assert dataset.images.encoding["shards"][1] == full.images.encoding["shards"][1]
        video = np.isin(dataset.serial.values, full.attrs["video_serials"])
        np.testing.assert_array_equal(dataset.images_converted.values, video)
        np.testing.assert_array_equal(dataset.alpha_converted.values, video)
    assert tree[schema.level_group(4, *NVS)].attrs["cropped_columns_right"] == 2


def test_level_frames_are_the_area_average_of_the_level_above(leveled):
    full = open_tree(leveled)[schema.sequence_group(*NVS)].to_dataset()
    level_2, level_4 = read_level(leveled, 2), read_level(leveled, 4)
    video = list(full.attrs["video_serials"])
    source_images = full.images.sel(serial=video).values
    source_alpha = full.alpha.sel(serial=video).values
    for serial_position, serial in enumerate(video):
        images_2, alpha_2 = downsample_frames(source_images[serial_position], source_alpha[serial_position], 2)
        np.testing.assert_array_equal(level_2.images.sel(serial=serial).values, images_2)
        np.testing.assert_array_equal(level_2.alpha.sel(serial=serial).values, alpha_2)
        images_4, alpha_4 = downsample_frames(images_2, alpha_2, 2)
        np.testing.assert_array_equal(level_4.images.sel(serial=serial).values, images_4)
        np.testing.assert_array_equal(level_4.alpha.sel(serial=serial).values, alpha_4)
        # straight from level 1 differs by rounding only (where an alpha rounds to 0, its colour is black)
        direct, direct_alpha = downsample_frames(source_images[serial_position], source_alpha[serial_position], 4)
        assert np.abs(direct_alpha.astype(int) - alpha_4).max() <= 1
        both = (direct_alpha > 0) & (alpha_4 > 0)
        assert np.abs(direct.astype(int) - images_4)[both].max() <= 1
    assert (level_4.images.values[level_4.alpha.values == 0] == 0).all()
    assert level_4.alpha.sel(serial=video).values.max() == 255


def test_the_same_3d_points_land_on_the_same_content_at_every_level(leveled):
    levels = {level: read_level(leveled, level) for level in (1,) + LEVELS}
    full = levels[1]
    for serial in full.attrs["video_serials"]:
        for index in range(full.sizes["timestep"]):
            alpha_1 = full.alpha.sel(serial=serial).values[index].astype(np.float64)
            rows, columns = np.indices(alpha_1.shape)
            centroid_1 = np.array([(alpha_1 * columns).sum(), (alpha_1 * rows).sum()]) / alpha_1.sum()
            world_2_cam = full.world_2_cam.sel(serial=serial).values
            points = visible_head_points(NVS, index, world_2_cam)
            pixels_1, _ = project_opencv(points, world_2_cam, full.intrinsics.sel(serial=serial).values)
            assert len(points) > 20
            for level, dataset in levels.items():
                alpha = dataset.alpha.sel(serial=serial).values[index]
                pixels, depth = project_opencv(points, world_2_cam, dataset.intrinsics.sel(serial=serial).values)
                assert (depth > 0).all()
                np.testing.assert_allclose(pixels, (pixels_1 + 0.5) / level - 0.5, atol=1e-9)
                columns_, rows_ = np.round(pixels).astype(int).T
                assert (alpha[rows_, columns_] > 0).all(), (serial, index, level)
                # the silhouette's alpha-weighted centroid moves exactly like a projected point
                weights = alpha.astype(np.float64)
                r, c = np.indices(alpha.shape)
                centroid = np.array([(weights * c).sum(), (weights * r).sum()]) / weights.sum()
                assert np.abs(centroid - ((centroid_1 + 0.5) / level - 0.5)).max() < 0.5
                # and points 14 cm above / below the head centre (radius 10.5 cm) land on background
                centre = tracking_centre(NVS, index)
                off = centre + 0.14 * np.array([[1.0], [-1.0]]) * world_2_cam[1, :3]
                off_pixels, _ = project_opencv(off, world_2_cam, dataset.intrinsics.sel(serial=serial).values)
                off_columns, off_rows = np.round(off_pixels).astype(int).T
                assert (alpha[off_rows, off_columns] == 0).all()


def test_mono_levels_and_the_test_sequence_without_video(leveled):
    tree = open_tree(leveled)
    level_2 = tree[schema.level_group(2, *MONO)].to_dataset()
    assert level_2.images.shape[2:4] == (26, 26) and level_2.images_converted.sum() == 1
    np.testing.assert_array_equal(level_2.expression, tree[schema.sequence_group(*MONO)].expression)
    free = tree[schema.level_group(2, "mono_flame_avatar", 393, "FREE")].to_dataset()
    assert "images" not in free and "expression" in free.coords
    full_free = tree[schema.sequence_group("mono_flame_avatar", 393, "FREE")].to_dataset()
    np.testing.assert_allclose(free.intrinsics, scale_intrinsics(full_free.intrinsics.values, 2))
    assert free.attrs["width"] == full_free.attrs["width"] // 2


# ---------------------------------------------------------------- resume, selection, bad input
@pytest.fixture
def store_copy(leveled, tmp_path) -> Path:
    target = tmp_path / "copy.zarr"
    shutil.copytree(leveled, target)
    return target


def test_rerun_writes_only_incomplete_cameras(store_copy):
    group = schema.level_group(4, *NVS)
    expected = zarr.open_array(store_copy, path=f"{group}/images", mode="r")[:]
    serial_index = 4
    images = zarr.open_array(store_copy, path=f"{group}/images", mode="r+")
    images[serial_index] = 7  # a run killed mid-camera: frames half written, flag still False
    zarr.open_array(store_copy, path=f"{group}/images_converted", mode="r+")[serial_index] = False
    again = downsample(store_copy, LEVELS, workers=2)
    assert again.cameras_written == 1 and again.cameras_skipped == 12 + 1  # the other NVS cameras + the mono one
    np.testing.assert_array_equal(zarr.open_array(store_copy, path=f"{group}/images", mode="r")[:], expected)
    assert downsample(store_copy, LEVELS, participants=[388]).cameras_written == 0


def test_a_new_level_uses_a_complete_existing_one_and_cameras_not_converted_wait(store_copy):
    full_group = schema.sequence_group(*NVS)
    zarr.open_array(store_copy, path=f"{full_group}/alpha_converted", mode="r+")[0] = False
    summary = downsample(store_copy, [8], participants=[388], sequences=["GLASSES"])
    assert summary.sequences == [full_group]
    assert summary.cameras_written == 12 and summary.cameras_not_converted == [f"{full_group}/222200042"]
    level_8 = read_level(store_copy, 8)
    level_4 = read_level(store_copy, 4)
    serial = "222200044"
    camera = level_4.sel(serial=serial)
    expected, _ = downsample_frames(camera.images.values, camera.alpha.values, 2)
    np.testing.assert_array_equal(level_8.images.sel(serial=serial).values, expected)
    assert not level_8.images_converted.sel(serial="222200042")


def test_bad_requests_name_the_problem(store_copy, tmp_path):
    with pytest.raises(ConfigError, match="too coarse"):
        downsample(store_copy, [3, 100])  # too coarse for the 52x52 mono frames only
    assert not zarr.open_group(store_copy, mode="r", use_consolidated=False).get("level_3")  # nothing written
    with pytest.raises(StoreError, match="no sequence"):
        downsample(store_copy, [2], participants=[422])
    with pytest.raises(StoreError, match="not a zarr store"):
        downsample(tmp_path / "missing.zarr", [2])
    zarr.open_group(store_copy, path=schema.level_group(2, *NVS), mode="r+").attrs["width"] = 54
    with pytest.raises(StoreError, match="does not match"):
        downsample(store_copy, [2])


def test_cli_downsample(store_copy):
    runner = CliRunner()
    result = runner.invoke(cli, ["downsample", str(store_copy), "--levels", "2,4", "-p", "393", "-j", "1"])
    assert result.exit_code == 0, result.output
    assert "0 camera(s) written, 1 already complete" in result.output
    result = runner.invoke(cli, ["downsample", str(store_copy), "--levels", "1"])
    assert result.exit_code == 2 and result.output.strip().endswith("e.g. 2,4).")
    assert "Traceback" not in result.output
    result = runner.invoke(cli, ["downsample", str(store_copy), "--levels", "2,x"])
    assert result.exit_code == 2 and "comma-separated list of integers" in result.output
