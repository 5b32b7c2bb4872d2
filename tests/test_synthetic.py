"""The synthetic benchmark: server layout, file contents, camera geometry, renders, determinism and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage
from scipy.spatial.transform import Rotation

from helpers import ProgressRecorder
from nersemble_zarr import catalogue
from nersemble_zarr.errors import CatalogueError, ConfigError
from nersemble_zarr.synthetic import (
    SyntheticConfig,
    camera_params,
    expected_files,
    generate,
    model_to_world,
    project,
    render_views,
    tracking,
)
from nersemble_zarr.synthetic.head import HEAD_RADII, ellipsoid_points
from nersemble_zarr.video import iter_frames, probe

NVS, MONO = "nvs", "mono_flame_avatar"
TRACKING_SHAPES = {
    "shape": (1, 300), "expression": (6, 100), "rotation": (6, 3), "rotation_matrices": (6, 3, 3),
    "translation": (6, 3), "jaw": (6, 3), "frames": (6,), "scale": (1, 1), "neck": (6, 3), "eyes": (6, 6),
}


def files_under(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


# ---------------------------------------------------------------- layout and metadata
def test_layout_is_exactly_the_server_layout(synthetic_root):
    nvs_meta = read_json(synthetic_root / NVS / "metadata.json")
    timesteps = nvs_meta["sequences"]["388"]["timesteps"]
    expected = {"nvs/metadata.json", "mono_flame_avatar/metadata.json",
                f"nvs/{catalogue.calibration_path(388)}", f"mono_flame_avatar/{catalogue.calibration_path(393)}"}
    for serial in catalogue.NVS_TRAIN_SERIALS:
        for kind in ("images", "alpha_maps"):
            expected.add(f"nvs/{catalogue.video_path(388, 'GLASSES', serial, kind)}")
    expected |= {f"nvs/{catalogue.pointcloud_path(388, 'GLASSES', t)}" for t in timesteps}
    for sequence in ("EXP-1-head", "FREE"):
        for name in (catalogue.TRACKING_FILE, catalogue.TRACKING_FILE_V1):
            expected.add(f"mono_flame_avatar/{catalogue.tracking_path(393, sequence, name)}")
    for kind in ("images", "alpha_maps"):
        expected.add(f"mono_flame_avatar/{catalogue.video_path(393, 'EXP-1-head', catalogue.MONO_TRAIN_SERIAL, kind)}")

    assert files_under(synthetic_root) == expected
    assert set(expected_files(SyntheticConfig.tiny())) == expected
    assert not any(f"cam_{serial}" in path for path in expected for serial in catalogue.NVS_HOLD_OUT_SERIALS
                   if path.startswith("nvs/"))


def test_metadata_lists_generated_participants_with_original_timesteps(synthetic_root):
    nvs_meta = read_json(synthetic_root / NVS / "metadata.json")
    assert list(nvs_meta) == ["sequences"] and list(nvs_meta["sequences"]) == ["388"]
    entry = nvs_meta["sequences"]["388"]
    assert entry["sequence_name"] == "GLASSES"
    timesteps = entry["timesteps"]
    assert len(timesteps) == 6 and all(isinstance(t, int) for t in timesteps)
    assert timesteps != list(range(6)) and np.all(np.diff(timesteps) > 0)

    mono_meta = read_json(synthetic_root / MONO / "metadata.json")
    assert mono_meta == {"participants_metadata": {"393": {"sequences_metadata": {
        "EXP-1-head": {"n_frames": 6}, "FREE": {"n_frames": 6}}}}}


@pytest.mark.parametrize("sequence", ["EXP-1-head", "FREE"])
@pytest.mark.parametrize("name", [catalogue.TRACKING_FILE, catalogue.TRACKING_FILE_V1])
def test_tracking_files_have_the_real_keys_shapes_and_dtypes(synthetic_root, sequence, name):
    with np.load(synthetic_root / MONO / catalogue.tracking_path(393, sequence, name), allow_pickle=False) as npz:
        arrays = dict(npz)
    assert {key: value.shape for key, value in arrays.items()} == TRACKING_SHAPES
    assert np.issubdtype(arrays["frames"].dtype, np.integer)
    assert all(value.dtype == np.float32 for key, value in arrays.items() if key != "frames")
    expected_matrices = Rotation.from_euler("XYZ", arrays["rotation"]).as_matrix()
    np.testing.assert_allclose(arrays["rotation_matrices"], expected_matrices, atol=1e-6)
    mono_meta = read_json(synthetic_root / MONO / "metadata.json")
    sequences = mono_meta["participants_metadata"]["393"]["sequences_metadata"]
    assert len(arrays["frames"]) == sequences[sequence]["n_frames"]
    assert not np.array_equal(arrays["frames"], np.arange(6))
    # Smooth: no parameter jumps by more than a small step between frames, yet the head moves.
    assert np.abs(np.diff(arrays["rotation"], axis=0)).max() < 0.3
    assert np.abs(np.diff(arrays["translation"], axis=0)).max() < 0.02
    assert np.abs(np.diff(arrays["rotation"], axis=0)).max() > 1e-3


def test_older_tracking_differs_from_current(synthetic_root):
    folder = synthetic_root / MONO / "393/sequences/EXP-1-head/tracking"
    with np.load(folder / catalogue.TRACKING_FILE) as current, np.load(folder / catalogue.TRACKING_FILE_V1) as older:
        assert not np.array_equal(current["expression"], older["expression"])
        np.testing.assert_array_equal(current["frames"], older["frames"])


def test_tracking_file_holds_the_values_the_renders_use(synthetic_root, synthetic_config):
    with np.load(synthetic_root / MONO / catalogue.tracking_path(393, "FREE")) as npz:
        for key, value in tracking(synthetic_config, MONO, 393, "FREE").items():
            np.testing.assert_array_equal(npz[key], value)


# ---------------------------------------------------------------- cameras
@pytest.mark.parametrize("benchmark,participant", [(NVS, 388), (MONO, 393)])
def test_calibration_is_plausible_opencv_for_all_16_cameras(synthetic_root, synthetic_config, benchmark, participant):
    params = read_json(synthetic_root / benchmark / catalogue.calibration_path(participant))
    assert set(params) == {"world_2_cam", "intrinsics"}
    assert set(params["world_2_cam"]) == set(params["intrinsics"]) == set(catalogue.SERIALS)
    width, height = synthetic_config.frame_size(benchmark)
    for serial in catalogue.SERIALS:
        world_2_cam, intrinsics = np.array(params["world_2_cam"][serial]), np.array(params["intrinsics"][serial])
        assert world_2_cam.shape == (4, 4) and intrinsics.shape == (3, 3)
        np.testing.assert_allclose(world_2_cam[3], [0, 0, 0, 1])
        np.testing.assert_allclose(world_2_cam[:3, :3] @ world_2_cam[:3, :3].T, np.eye(3), atol=1e-9)
        assert np.linalg.det(world_2_cam[:3, :3]) == pytest.approx(1.0)
        camera_centre = -world_2_cam[:3, :3].T @ world_2_cam[:3, 3]
        assert 0.9 < np.linalg.norm(camera_centre) < 1.1
        assert camera_centre[2] > 0  # in front of the face (+z), never behind the head
        assert abs(intrinsics[0, 2] - width / 2) < 0.05 * width and abs(intrinsics[1, 2] - height / 2) < 0.05 * width
        # OpenCV: image y points down, so the world's up direction projects upwards in every camera.
        assert (world_2_cam[:3, :3] @ [0, 1, 0])[1] < 0


@pytest.mark.parametrize("config", [SyntheticConfig.tiny(), SyntheticConfig.full()], ids=["tiny", "full"])
def test_the_whole_head_stays_in_view_of_every_camera(config):
    surface = ellipsoid_points(200, np.random.default_rng(0))
    for benchmark in (NVS, MONO):
        width, height = config.frame_size(benchmark)
        participant = config.participants_of(benchmark)[0]
        sequence = config.sequences_of(benchmark, participant)[-1]
        params = tracking(config, benchmark, participant, sequence)
        world = model_to_world(surface, params["rotation_matrices"], params["translation"], params["scale"])
        cameras = camera_params(config, benchmark, participant)
        for serial in catalogue.SERIALS:
            pixels, depth = project(world, cameras["world_2_cam"][serial], cameras["intrinsics"][serial])
            assert depth.min() > 0.5
            assert pixels[..., 0].min() > 0 and pixels[..., 0].max() < width - 1, (benchmark, serial)
            assert pixels[..., 1].min() > 0 and pixels[..., 1].max() < height - 1, (benchmark, serial)
            # and the head fills a good part of the frame
            assert np.ptp(pixels[0, :, 1]) > 0.25 * min(width, height)


def test_model_to_world_is_the_benchmark_formula():
    rng = np.random.default_rng(1)
    vertices = rng.normal(size=(5, 3))
    euler, translation, scale = rng.normal(size=(2, 3)), rng.normal(size=(2, 3)), np.array([[1.3]])
    matrices = Rotation.from_euler("XYZ", euler).as_matrix()
    placed = model_to_world(vertices, matrices, translation, scale)
    for t in range(2):
        np.testing.assert_allclose(placed[t], 1.3 * vertices @ matrices[t].T + translation[t])


# ---------------------------------------------------------------- renders and videos
def test_videos_have_the_benchmark_size_rate_and_length(synthetic_root, synthetic_config):
    for benchmark, participant, sequence, serial in [(NVS, 388, "GLASSES", "222200036"),
                                                     (MONO, 393, "EXP-1-head", catalogue.MONO_TRAIN_SERIAL)]:
        width, height = synthetic_config.frame_size(benchmark)
        for kind in ("images", "alpha_maps"):
            info = probe(synthetic_root / benchmark / catalogue.video_path(participant, sequence, serial, kind))
            assert (info.width, info.height, info.n_frames, info.codec) == (width, height, 6, "h264")
            assert info.fps == pytest.approx(catalogue.SPECS[benchmark].fps, abs=0.01)
    assert synthetic_config.frame_size(NVS) == (110, 160)


@pytest.mark.parametrize("serial", ["222200042", "222200036", "221501007"])
def test_videos_decode_to_the_rendered_ground_truth(synthetic_root, synthetic_config, serial):
    images_path = synthetic_root / NVS / catalogue.video_path(388, "GLASSES", serial, "images")
    alpha_path = synthetic_root / NVS / catalogue.video_path(388, "GLASSES", serial, "alpha_maps")
    truth = list(render_views(synthetic_config, NVS, 388, "GLASSES", serial))
    decoded = zip(iter_frames(images_path), iter_frames(alpha_path, gray=True))
    for (rgb, alpha), (true_rgb, true_alpha) in zip(decoded, truth, strict=True):
        subject = true_alpha > 0
        assert 0.05 < subject.mean() < 0.6
        # Codec ringing reaches a couple of pixels beyond the silhouette; farther out it is only noise.
        background = ~ndimage.binary_dilation(subject, iterations=2)
        interior = ndimage.binary_erosion(true_alpha == 255, iterations=2)
        # alpha > 0 exactly where the subject is
        assert np.abs(alpha.astype(int) - true_alpha).mean() < 2
        assert (alpha[interior] >= 240).all() and (alpha[background] <= 12).all()
        assert ((alpha > 127) != (true_alpha > 127)).mean() < 0.01
        # images are black where alpha is 0 and match the render where it is not
        assert (true_rgb[~subject] == 0).all()
        assert (rgb[background] <= 15).all() and np.percentile(rgb[~subject], 99) < 12
        assert np.abs(rgb.astype(int) - true_rgb)[true_alpha == 255].mean() < 6


def test_frames_change_over_time(synthetic_root):
    frames = list(iter_frames(synthetic_root / MONO / catalogue.video_path(393, "EXP-1-head", "222200037")))
    steps = [np.abs(a.astype(int) - b).mean() for a, b in zip(frames, frames[1:])]
    assert min(steps) > 0.5


def test_rendered_silhouette_follows_the_flame_placement(synthetic_config):
    """Surface points placed with model_to_world land inside the rendered alpha, in every camera."""
    params = tracking(synthetic_config, MONO, 393, "FREE")
    cameras = camera_params(synthetic_config, MONO, 393)
    surface = ellipsoid_points(500, np.random.default_rng(2)) * 0.9  # just inside the surface
    world = model_to_world(surface, params["rotation_matrices"], params["translation"], params["scale"])
    for serial in catalogue.submission_serials(MONO):
        for index, (rgb, alpha) in enumerate(render_views(synthetic_config, MONO, 393, "FREE", serial)):
            pixels, _ = project(world[index], cameras["world_2_cam"][serial], cameras["intrinsics"][serial])
            columns, rows = np.round(pixels).astype(int).T
            assert (alpha[rows, columns] == 255).all()
            assert rgb[rows, columns].max(axis=1).min() > 0


def test_render_views_covers_hold_out_cameras_and_frame_ranges(synthetic_config):
    all_frames = list(render_views(synthetic_config, NVS, 388, "GLASSES", "222200046"))
    assert len(all_frames) == 6
    rgb, alpha = all_frames[0]
    assert rgb.shape == (160, 110, 3) and alpha.shape == (160, 110)
    assert rgb.dtype == alpha.dtype == np.uint8
    some = list(render_views(synthetic_config, NVS, 388, "GLASSES", "222200046", start=2, stop=4))
    assert len(some) == 2
    np.testing.assert_array_equal(some[0][0], all_frames[2][0])
    other_camera = next(render_views(synthetic_config, NVS, 388, "GLASSES", "222200037"))[0]
    assert not np.array_equal(other_camera, rgb)


@pytest.mark.parametrize(
    "args,match",
    [((NVS, 422, "EXP-2-eyes", "222200046"), "Participant 422"),
     ((MONO, 393, "SEN-09-frown_events_bad", "222200037"), "SEN-09"),
     ((NVS, 388, "GLASSES", "123"), "'123'")],
)
def test_render_views_rejects_what_the_config_does_not_hold(synthetic_config, args, match):
    with pytest.raises(CatalogueError, match=match):
        next(render_views(synthetic_config, *args))


# ---------------------------------------------------------------- point clouds
def test_pointclouds_are_open3d_readable_on_the_head_surface(synthetic_root, synthetic_config):
    import open3d as o3d

    params = tracking(synthetic_config, NVS, 388, "GLASSES")
    for index, timestep in enumerate(params["frames"]):
        cloud = o3d.io.read_point_cloud(str(synthetic_root / NVS / catalogue.pointcloud_path(388, "GLASSES", timestep)))
        assert cloud.has_colors() and cloud.has_normals()
        points, colours, normals = (np.asarray(a) for a in (cloud.points, cloud.colors, cloud.normals))
        assert 0.3 * synthetic_config.n_points < len(points) < synthetic_config.n_points
        np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-5)
        assert colours.min() >= 0 and colours.max() <= 1 and colours.std(axis=0).min() > 0.05
        scale = float(params["scale"][0, 0])
        model = (points - params["translation"][index]) @ params["rotation_matrices"][index] / scale
        np.testing.assert_allclose(np.linalg.norm(model / HEAD_RADII, axis=1), 1, atol=0.03)


# ---------------------------------------------------------------- determinism and atomic writes
def test_same_config_gives_identical_files_in_parallel_too(synthetic_root, synthetic_config, tmp_path):
    progress = ProgressRecorder()
    again = generate(tmp_path / "again", synthetic_config, workers=2, progress=progress)
    assert progress.totals == [len(expected_files(synthetic_config))] and progress.counts == [1] * len(progress.texts)
    assert sorted(progress.texts) == sorted(expected_files(synthetic_config))
    paths = sorted(files_under(synthetic_root))
    assert sorted(files_under(again)) == paths
    for relative in paths:
        if relative.endswith(".mp4"):
            frames = zip(iter_frames(synthetic_root / relative), iter_frames(again / relative), strict=True)
            for first, second in frames:
                np.testing.assert_array_equal(first, second)
        else:
            assert (synthetic_root / relative).read_bytes() == (again / relative).read_bytes(), relative


def test_another_seed_gives_other_content(synthetic_config):
    other = SyntheticConfig.tiny(seed=1)
    assert not np.array_equal(tracking(other, MONO, 393, "FREE")["expression"],
                              tracking(synthetic_config, MONO, 393, "FREE")["expression"])
    assert not np.array_equal(camera_params(other, NVS, 388)["world_2_cam"]["222200036"],
                              camera_params(synthetic_config, NVS, 388)["world_2_cam"]["222200036"])


def test_a_failed_write_leaves_no_partial_file(tmp_path):
    config = SyntheticConfig.tiny()
    blocker = (tmp_path / "root" / "mono_flame_avatar" / catalogue.calibration_path(393)).parent
    blocker.parent.mkdir(parents=True)
    blocker.write_text("")  # a file where the calibration folder must go: that write fails
    with pytest.raises(OSError):
        generate(tmp_path / "root", config)
    leftovers = [p.name for p in (tmp_path / "root").rglob("*") if ".part" in p.name]
    assert leftovers == []
    assert (tmp_path / "root" / "nvs" / "metadata.json").is_file()


# ---------------------------------------------------------------- config and CLI
def test_full_config_has_real_sizes_and_lengths():
    full = SyntheticConfig.full()
    assert full.frame_size(NVS) == (1100, 1604) and full.frame_size(MONO) == (512, 512)
    assert full.n_frames_of(NVS, 388, "GLASSES") == 1118
    assert all(200 <= full.n_frames_of(MONO, 393, s) < 400 for s in full.sequences_of(MONO, 393))
    assert full.participants_of(NVS) == tuple(catalogue.NVS_SEQUENCES)
    assert len(expected_files(full)) > len(expected_files(SyntheticConfig.tiny()))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [({"scale": 0}, ConfigError, "scale 0"),
     ({"n_frames": 0}, ConfigError, "n_frames 0"),
     ({"nvs_serials": ("222200046",)}, ConfigError, "222200046"),
     ({"nvs_participants": (393,)}, CatalogueError, "393"),
     ({"mono_test_sequences": ("EXP-1-head",)}, ConfigError, "EXP-1-head")],
)
def test_config_rejects_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        SyntheticConfig(**kwargs)


def test_cli_writes_a_benchmark_and_reports_bad_output_in_one_line(tmp_path):
    from nersemble_zarr.cli.main import main

    runner = CliRunner()
    result = runner.invoke(main, ["synthetic", str(tmp_path / "out"), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "out") == set(expected_files(SyntheticConfig.tour(3)))  # tiny + SVFR 17, 215
    assert any(path.startswith("svfr/017/") for path in files_under(tmp_path / "out"))
    with np.load(tmp_path / "out" / MONO / catalogue.tracking_path(393, "FREE")) as npz:
        expected = tracking(SyntheticConfig.tiny(3), MONO, 393, "FREE")["expression"]
        np.testing.assert_array_equal(npz["expression"], expected)

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    result = runner.invoke(main, ["synthetic", str(a_file)])
    assert result.exit_code == 2
    assert "is a regular file, not a folder" in result.output and "Traceback" not in result.output
