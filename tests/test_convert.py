"""convert: every pixel, camera and FLAME parameter equals its source; resume, add, bad input."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

from helpers import store_digests
from nersemble_zarr import catalogue, schema
from nersemble_zarr import store as store_module
from nersemble_zarr.cli.main import main as cli
from nersemble_zarr.frame_codecs import frame_codec
from nersemble_zarr.convert import convert
from nersemble_zarr.errors import StoreError
from nersemble_zarr.video import iter_frames

NVS_SEQ = ("nvs", 388, "GLASSES")
MONO_TRAIN = ("mono_flame_avatar", 393, "EXP-1-head")
MONO_TEST = ("mono_flame_avatar", 393, "FREE")


def copy_root(synthetic_root: Path, tmp_path: Path) -> Path:
    target = tmp_path / "fetched"
    shutil.copytree(synthetic_root, target)
    return target


@pytest.mark.parametrize("key", [NVS_SEQ, MONO_TRAIN])
def test_every_pixel_equals_the_decoded_source_video(converted, synthetic_root, key):
    benchmark, participant, sequence = key
    dataset = store_module.sequence(store_module.open(converted), benchmark, participant, sequence)
    serials = catalogue.video_serials(benchmark, sequence)
    assert set(dataset.attrs["video_serials"]) == set(serials)
    for serial in serials:
        for variable, kind in ((schema.IMAGES, "images"), (schema.ALPHA, "alpha_maps")):
            source = synthetic_root / benchmark / catalogue.video_path(participant, sequence, serial, kind)
            expected = np.stack(list(iter_frames(source, gray=variable == schema.ALPHA)))
            stored = dataset[variable].sel(serial=serial).values
            np.testing.assert_array_equal(stored, expected, err_msg=f"{variable} of {serial}")
            assert bool(dataset[variable + "_converted"].sel(serial=serial))


def test_cameras_equal_calibration_and_split_follows_the_benchmark(converted, synthetic_root):
    dataset = store_module.sequence(store_module.open(converted), "nvs", 388)
    params = json.loads((synthetic_root / "nvs" / catalogue.calibration_path(388)).read_text())
    for serial in dataset.serial.values:
        np.testing.assert_array_equal(dataset.world_2_cam.sel(serial=serial).values, params["world_2_cam"][serial])
        np.testing.assert_array_equal(dataset.intrinsics.sel(serial=serial).values, params["intrinsics"][serial])
    assert set(store_module.hold_out_cameras(dataset).serial.values) == set(catalogue.NVS_HOLD_OUT_SERIALS)
    assert len(store_module.train_cameras(dataset).serial) == len(catalogue.NVS_TRAIN_SERIALS)


def test_timesteps_keep_original_frame_indices(converted, synthetic_root):
    tree = store_module.open(converted)
    metadata = json.loads((synthetic_root / "nvs" / "metadata.json").read_text())
    expected = metadata["sequences"]["388"]["timesteps"]
    dataset = store_module.sequence(tree, "nvs", 388)
    np.testing.assert_array_equal(dataset.timestep.values, expected)
    assert list(dataset.timestep.values) != list(range(len(expected)))
    # Selecting by original index returns the frame decoded at that position of the video.
    position = 2
    frame = store_module.frame(dataset, catalogue.NVS_TRAIN_SERIALS[0], expected[position])
    video = synthetic_root / "nvs" / catalogue.video_path(388, "GLASSES", catalogue.NVS_TRAIN_SERIALS[0])
    np.testing.assert_array_equal(frame, list(iter_frames(video))[position])


@pytest.mark.parametrize("key", [MONO_TRAIN, MONO_TEST])
def test_flame_parameters_equal_the_tracking_file(converted, synthetic_root, key):
    benchmark, participant, sequence = key
    dataset = store_module.sequence(store_module.open(converted), benchmark, participant, sequence)
    npz = np.load(synthetic_root / benchmark / catalogue.tracking_path(participant, sequence))
    for name in schema.FLAME_TIMESTEP_PARAMS:
        np.testing.assert_array_equal(dataset[name].values, npz[name].astype(np.float32))
        assert dataset[name].dims[0] == schema.TIMESTEP
    np.testing.assert_array_equal(dataset["shape"].values, npz["shape"][0])
    assert float(dataset["scale"]) == pytest.approx(float(npz["scale"][0, 0]))
    np.testing.assert_array_equal(dataset.timestep.values, npz["frames"])
    # Slicing keeps the parameters attached to their frames.
    sliced = dataset.isel(timestep=slice(1, 3))
    np.testing.assert_array_equal(sliced["expression"].values, npz["expression"][1:3].astype(np.float32))


def test_test_sequence_has_tracking_and_cameras_but_no_images(converted):
    dataset = store_module.sequence(store_module.open(converted), *MONO_TEST)
    assert schema.IMAGES not in dataset and schema.ALPHA not in dataset
    assert set(dataset.serial.values) == set(catalogue.submission_serials("mono_flame_avatar"))
    assert dataset.world_2_cam.shape == (4, 4, 4)


def test_point_clouds_are_stored_with_their_counts(converted, synthetic_root):
    import open3d

    dataset = store_module.sequence(store_module.open(converted), "nvs", 388)
    first = int(dataset.pointcloud_timestep.values[0])
    cloud = open3d.io.read_point_cloud(str(synthetic_root / "nvs" / catalogue.pointcloud_path(388, "GLASSES", first)))
    count = int(dataset[schema.POINT_COUNT].values[0])
    assert count == len(cloud.points)
    np.testing.assert_allclose(dataset[schema.POINTS].values[0, :count], np.asarray(cloud.points), rtol=1e-6)
    np.testing.assert_allclose(dataset[schema.COLORS].values[0, :count], np.asarray(cloud.colors), rtol=1e-6)


def assert_plain_xarray_reads(store: Path, group: str) -> None:
    """A fresh interpreter that never imports nersemble_zarr opens ``group`` and reads a non-black frame."""
    code = (
        "import sys, xarray as xr; "
        f"t = xr.open_datatree({str(store)!r}, engine='zarr', chunks={{}}); "
        f"ds = t[{group!r}].to_dataset(); "
        "frame = ds.images.sel(serial=ds.attrs['video_serials'][0]).isel(timestep=0); "
        "print(ds.images.dims, int(frame.sum() > 0), "
        "any(m.startswith('nersemble_zarr') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "('serial', 'timestep', 'y', 'x', 'channel') 1 False" in out


def test_plain_xarray_opens_the_store_without_this_package(converted):
    assert_plain_xarray_reads(converted, "nvs/388/GLASSES")


def test_chunks_are_single_frames_in_shards(converted):
    array = zarr.open_array(converted, path="nvs/388/GLASSES/images", mode="r")
    assert array.chunks[:2] == (1, 1)
    assert array.shards is not None and array.shards[0] == 1 and array.shards[1] > 1


@pytest.mark.parametrize("codec, exact", [("lz4", True), ("jpegxl-lossless", True), ("jpegxl", False)])
def test_other_codecs(synthetic_root, tmp_path, codec, exact):
    store = tmp_path / f"{codec}.zarr"
    convert(synthetic_root, store, benchmarks=("mono_flame_avatar",), sequences=("EXP-1-head",), codec=codec, workers=2)
    dataset = store_module.sequence(store_module.open(store), *MONO_TRAIN)
    video = synthetic_root / "mono_flame_avatar" / catalogue.video_path(393, "EXP-1-head", catalogue.MONO_TRAIN_SERIAL)
    expected = np.stack(list(iter_frames(video))).astype(np.float64)
    stored = dataset.images.sel(serial=catalogue.MONO_TRAIN_SERIAL).values.astype(np.float64)
    if exact:
        np.testing.assert_array_equal(stored, expected)
        if not frame_codec(codec).needs_package:
            assert_plain_xarray_reads(store, "mono_flame_avatar/393/EXP-1-head")
    else:
        psnr = 10 * np.log10(255**2 / np.mean((stored - expected) ** 2))
        assert psnr > 35, psnr


def test_rerun_skips_and_adding_a_sequence_leaves_the_rest_untouched(synthetic_root, tmp_path):
    store = tmp_path / "grow.zarr"
    convert(synthetic_root, store, benchmarks=("mono_flame_avatar",), sequences=("EXP-1-head",), workers=2)
    before = store_digests(store, "mono_flame_avatar/393/EXP-1-head")
    shard_files = sorted(p for p in (store / "mono_flame_avatar/393/EXP-1-head/images").rglob("*") if p.is_file())
    mtimes = [p.stat().st_mtime_ns for p in shard_files]
    again = convert(synthetic_root, store, benchmarks=("mono_flame_avatar",), sequences=("EXP-1-head",))
    assert again.videos_written == 0 and again.videos_skipped == 2
    convert(synthetic_root, store, benchmarks=("mono_flame_avatar",), sequences=("FREE",))
    assert store_digests(store, "mono_flame_avatar/393/EXP-1-head") == before
    assert [p.stat().st_mtime_ns for p in shard_files] == mtimes
    tree = store_module.open(store)
    assert {"EXP-1-head", "FREE"} <= set(tree["mono_flame_avatar/393"].children)


def test_resume_after_a_killed_process_matches_a_clean_conversion(synthetic_root, converted, tmp_path):
    store = tmp_path / "killed.zarr"
    command = [sys.executable, "-m", "nersemble_zarr.cli", "convert", str(synthetic_root), str(store),
               "-b", "nvs", "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    shard_dir = store / "nvs/388/GLASSES/images/c"
    while time.monotonic() < deadline and process.poll() is None:
        if shard_dir.exists() and any(p.is_file() for p in shard_dir.rglob("*")):
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    flags = zarr.open_array(store, path="nvs/388/GLASSES/images_converted", mode="r")[:]
    assert not flags.all(), "the kill should land before every camera is complete"
    result = CliRunner().invoke(cli, ["convert", str(synthetic_root), str(store), "-b", "nvs", "-j", "2"])
    assert result.exit_code == 0, result.output
    assert store_digests(store, "nvs/388/GLASSES") == store_digests(converted, "nvs/388/GLASSES")


@pytest.fixture
def fetched_copy(synthetic_root, tmp_path) -> Path:
    return copy_root(synthetic_root, tmp_path)


def _nvs_video(root: Path, serial_index: int = 3, kind: str = "images") -> Path:
    return root / "nvs" / catalogue.video_path(388, "GLASSES", catalogue.NVS_TRAIN_SERIALS[serial_index], kind)


def _break_truncate(root: Path) -> Path:
    path = _nvs_video(root)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _break_zero_bytes(root: Path) -> Path:
    path = _nvs_video(root, kind="alpha_maps")
    path.write_bytes(b"")
    return path


def _break_not_a_video(root: Path) -> Path:
    path = _nvs_video(root)
    path.write_bytes(b"<html>not found</html>" * 100)
    return path


def _break_frame_count(root: Path) -> Path:
    path = root / "nvs" / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["sequences"]["388"]["timesteps"] = metadata["sequences"]["388"]["timesteps"][:-1]
    path.write_text(json.dumps(metadata))
    return _nvs_video(root, 0)


def _break_calibration(root: Path) -> Path:
    path = root / "nvs" / catalogue.calibration_path(388)
    path.unlink()
    return path


def _break_nan_camera(root: Path) -> Path:
    path = root / "nvs" / catalogue.calibration_path(388)
    params = json.loads(path.read_text())
    params["world_2_cam"][catalogue.SERIALS[0]][0][0] = float("nan")
    path.write_text(json.dumps(params))
    return path


@pytest.mark.parametrize(
    "breaker, fragment",
    [
        (_break_truncate, ""),
        (_break_zero_bytes, "empty"),
        (_break_not_a_video, ""),
        (_break_frame_count, "frames"),
        (_break_calibration, "missing"),
        (_break_nan_camera, "NaN"),
    ],
)
def test_bad_input_is_refused_and_the_existing_store_is_left_as_it_was(
    converted, fetched_copy, tmp_path, breaker, fragment
):
    store = tmp_path / "existing.zarr"
    shutil.copytree(converted, store, ignore=shutil.ignore_patterns("nvs"))
    root_meta = (store / "zarr.json").read_bytes()
    files_before = sorted(str(p.relative_to(store)) for p in store.rglob("*"))
    broken = breaker(fetched_copy)
    result = CliRunner().invoke(cli, ["convert", str(fetched_copy), str(store), "-b", "nvs"])
    assert result.exit_code != 0
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error: ") and str(broken) in message and fragment in message
    assert "Traceback" not in result.output
    assert sorted(str(p.relative_to(store)) for p in store.rglob("*")) == files_before
    assert (store / "zarr.json").read_bytes() == root_meta


def test_unknown_participant_and_foreign_stores_are_refused(synthetic_root, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["convert", str(synthetic_root), str(tmp_path / "s.zarr"), "-b", "nvs", "-p", "999"])
    assert result.exit_code == 2 and "Unknown participant 999" in result.output
    assert not (tmp_path / "s.zarr").exists()
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    result = runner.invoke(cli, ["convert", str(synthetic_root), str(folder), "-b", "nvs"])
    assert result.exit_code != 0 and "not a zarr store" in result.output
    assert (folder / "notes.txt").read_text() == "keep me" and len(list(folder.iterdir())) == 1


def test_a_store_from_a_newer_format_is_refused(converted, tmp_path):
    store = tmp_path / "future.zarr"
    shutil.copytree(converted, store)
    root = zarr.open_group(store, mode="r+")
    root.attrs[schema.FORMAT_ATTR] = schema.FORMAT_VERSION + 1
    with pytest.raises(StoreError, match="newer"):
        store_module.open(store)


def test_info_reports_arrays_codec_and_missing_parts(converted):
    result = CliRunner().invoke(cli, ["info", str(converted), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    paths = {s["path"] for s in report["sequences"]}
    assert {"nvs/388/GLASSES", "mono_flame_avatar/393/EXP-1-head", "mono_flame_avatar/393/FREE"} <= paths
    images = next(a for s in report["sequences"] if s["path"] == "nvs/388/GLASSES" for a in s["arrays"] if a["name"] == "images")
    assert images["codec"] == "zstd" and images["stored_bytes"] > 0 and images["shards"]
    assert "nvs/422/EXP-2-eyes" in report["missing_sequences"]
    text = CliRunner().invoke(cli, ["info", str(converted)]).output
    assert "nvs/388/GLASSES" in text and "complete" in text


def test_lazy_slicing_with_dask(converted):
    tree = xr.open_datatree(converted, engine="zarr", chunks={})
    images = tree["nvs/388/GLASSES"].images
    assert images.chunks is not None
    mean = images.sel(serial=list(catalogue.NVS_TRAIN_SERIALS[:2])).mean(dim=("y", "x", "channel")).compute()
    assert mean.shape == (2, images.sizes["timestep"]) and float(mean.min()) > 0


def test_info_lists_resolution_levels(converted, tmp_path):
    from nersemble_zarr.levels import downsample

    store = tmp_path / "levels.zarr"
    shutil.copytree(converted, store)
    downsample(store, [2], participants=[388])
    report = json.loads(CliRunner().invoke(cli, ["info", str(store), "--json"]).output)
    level = next(s for s in report["sequences"] if s["path"] == "level_2/nvs/388/GLASSES")
    assert level["converted"] and not any(level["cameras_missing"].values())
    images = next(a for a in level["arrays"] if a["name"] == "images")
    full = zarr.open_array(store, path="nvs/388/GLASSES/images", mode="r")
    assert images["shape"][2:4] == [full.shape[2] // 2, full.shape[3] // 2]


def test_a_sequence_without_video_takes_the_frame_size_of_its_participants_videos(converted):
    tree = store_module.open(converted)
    test_sequence = store_module.sequence(tree, *MONO_TEST)
    train_sequence = store_module.sequence(tree, *MONO_TRAIN)
    assert (test_sequence.attrs["height"], test_sequence.attrs["width"]) == train_sequence.images.shape[2:4]
