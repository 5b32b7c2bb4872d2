"""convert -b dataset: the NeRSemble v2 dataset into dataset/{p}/{s} (or level_{N}/dataset/{p}/{s}), each frame
compared with the official nersemble-data kit's; resume, refusals, and every bad input one sentence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from nersemble_data.data import nersemble_data as official
from nersemble_data.util.color_correction import correct_color as official_correct_color
from nersemble_zarr import schema, storage
from nersemble_zarr import store as store_module
from nersemble_zarr.cli.main import main as cli
from nersemble_zarr.convert import DatasetOptions, convert
from nersemble_zarr.errors import CatalogueError, ConfigError, InputDataError, StoreError
from nersemble_zarr.levels import downsample, scale_intrinsics
from nersemble_zarr.levels.resample import block_mean
from nersemble_zarr.synthetic.dataset_config import SyntheticDatasetConfig

CONFIG = SyntheticDatasetConfig()  # what the synthetic_dataset fixture holds
SEQUENCE = "EXP-1-head"
LEVEL_ONLY = "EMO-1-shout+laugh"  # converted at level 4 only


def kit(synthetic_dataset: Path, participant: int) -> official.NeRSembleParticipantDataManager:
    return official.NeRSembleParticipantDataManager(str(synthetic_dataset), participant)


def open_group(store: Path, participant: int, sequence: str, level: int = 1):
    return store_module.sequence(store_module.open(store), "dataset", participant, sequence, level=level)


def copy_dataset(synthetic_dataset: Path, tmp_path: Path) -> Path:
    """A private ROOT holding a copy of the synthetic dataset as ROOT/dataset (to damage)."""
    shutil.copytree(synthetic_dataset, tmp_path / "root" / "dataset")
    return tmp_path / "root"


# ---------------------------------------------------------------- layout and contents
@pytest.mark.parametrize("level", [1, 4])
def test_groups_hold_frames_cameras_and_colour_matrices_of_the_fetched_files(dataset_store, synthetic_dataset, level):
    width, height = CONFIG.frame_size()
    for participant in CONFIG.participants:
        group = open_group(dataset_store, participant, SEQUENCE, level)
        calibration_text = (synthetic_dataset / f"{participant:03d}/calibration/camera_params.json").read_text()
        colour_text = (synthetic_dataset / f"{participant:03d}/calibration/color_calibration.json").read_text()
        calibration = json.loads(calibration_text)
        assert group[schema.IMAGES].dims == (schema.SERIAL, schema.TIMESTEP, schema.Y, schema.X, schema.CHANNEL)
        assert group[schema.IMAGES].shape == (3, 4, height // level, width // level, 3)
        assert group[schema.IMAGES].dtype == np.uint8
        assert list(group[schema.TIMESTEP].values) == [0, 1, 2, 3]
        assert list(group[schema.SERIAL].values) == list(calibration["world_2_cam"])
        assert schema.SPLIT not in group.coords
        expected_k = scale_intrinsics(np.array(calibration["intrinsics"]), level)
        for serial in group[schema.SERIAL].values:
            np.testing.assert_array_equal(group[schema.WORLD_2_CAM].sel(serial=serial),
                                          calibration["world_2_cam"][serial])
            np.testing.assert_array_equal(group[schema.INTRINSICS].sel(serial=serial), expected_k)
            np.testing.assert_array_equal(group[schema.COLOUR_CORRECTION].sel(serial=serial),
                                          json.loads(colour_text)[serial])
        assert group[schema.COLOUR_CORRECTION].dims == (schema.SERIAL, schema.COLOUR_ROW, schema.COLOUR_TERM)
        assert group[schema.BACKGROUND].dims == (schema.SERIAL, schema.Y, schema.X, schema.CHANNEL)
        assert group[schema.BACKGROUND].shape == (3, height // level, width // level, 3)
        attrs = group.attrs
        assert attrs[schema.CALIBRATION_JSON_ATTR] == calibration_text  # verbatim, key order and spacing kept
        assert attrs[schema.COLOUR_CALIBRATION_JSON_ATTR] == colour_text
        assert attrs[schema.COLOUR_CORRECTED_ATTR] is (level == 4)
        assert (attrs["benchmark"], attrs["participant"], attrs["sequence"]) == ("dataset", participant, SEQUENCE)
        assert (attrs["height"], attrs["width"], attrs["fps"]) == (height // level, width // level, 73)
        assert attrs["video_serials"] == list(CONFIG.serials)
        assert attrs.get(schema.LEVEL_ATTR) == (4 if level == 4 else None)


def test_a_level_is_written_without_full_resolution(dataset_store):
    root = zarr.open_group(dataset_store, mode="r")
    assert f"level_4/dataset/17/{LEVEL_ONLY}" in root and f"dataset/17/{LEVEL_ONLY}" not in root
    assert ("dataset", 17, LEVEL_ONLY) not in storage.sequence_keys(dataset_store)
    assert ("dataset", 17, LEVEL_ONLY) in storage.sequence_keys(dataset_store, level=4)
    assert ("dataset", 17, LEVEL_ONLY) in storage.sequence_keys(dataset_store, level=None)


def test_full_resolution_frames_equal_the_kits(dataset_store, synthetic_dataset):
    for participant in CONFIG.participants:
        group = open_group(dataset_store, participant, SEQUENCE)
        for serial in CONFIG.serials:
            for timestep in range(CONFIG.n_frames):
                expected = kit(synthetic_dataset, participant).load_image(SEQUENCE, serial, timestep, as_uint8=True)
                stored = store_module.frame(group, serial, timestep)
                assert np.abs(stored.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("sequence", [SEQUENCE, LEVEL_ONLY])
def test_level_4_corrected_frames_equal_the_official_correction_of_the_area_average(
        dataset_store, synthetic_dataset, sequence):
    """The documented order (area average, then correct), each step the official's or the levels': terms 3 (17)
    and 10 (18), every pixel within one level."""
    terms = set()
    for participant in CONFIG.participants:
        manager = kit(synthetic_dataset, participant)
        matrices = manager.load_color_calibration()
        group = open_group(dataset_store, participant, sequence, 4)
        for serial in CONFIG.serials:
            terms.add(matrices[serial].shape[1])
            for timestep in range(CONFIG.n_frames):
                decoded = manager.load_image(sequence, serial, timestep, as_uint8=True)
                expected = official_correct_color(block_mean(decoded[None], 4)[0], matrices[serial])
                stored = store_module.frame(group, serial, timestep)
                assert stored.shape == expected.shape
                assert np.abs(stored.astype(int) - expected).max() <= 1, (participant, serial, timestep)
    assert terms == {3, 10}


@pytest.mark.parametrize("level", [1, 4])
def test_backgrounds_are_the_jpegs_at_the_level_and_correction_of_the_frames(dataset_store, synthetic_dataset, level):
    for participant in CONFIG.participants:
        matrices = kit(synthetic_dataset, participant).load_color_calibration()
        group = open_group(dataset_store, participant, SEQUENCE, level)
        assert group[schema.converted_flag(schema.BACKGROUND)].values.all()
        for serial in CONFIG.serials:
            picture = cv2.imread(str(synthetic_dataset / f"{participant:03d}/sequences/BACKGROUND/image_{serial}.jpg"))
            expected = picture[..., ::-1]
            if level > 1:
                expected = official_correct_color(block_mean(expected[None], level)[0], matrices[serial])
            stored = group[schema.BACKGROUND].sel(serial=serial).values
            assert np.abs(stored.astype(int) - expected).max() <= 1


# ---------------------------------------------------------------- resume, locking, refusals
def test_rerun_skips_written_cameras_and_resumes_an_unflagged_one(dataset_store, synthetic_dataset, tmp_path):
    store = tmp_path / "store.zarr"
    shutil.copytree(dataset_store, store)
    root = synthetic_dataset.parent
    options = DatasetOptions(level=4, colour_correct=True)
    again = convert(root, store, benchmarks=("dataset",), participants=(17,), sequences=(SEQUENCE,), dataset=options)
    assert (again.videos_written, again.videos_skipped) == (0, 3)
    group = f"level_4/dataset/17/{SEQUENCE}"
    before = open_group(store, 17, SEQUENCE, 4)[schema.IMAGES].values
    flag = zarr.open_array(store, path=f"{group}/images_converted", mode="r+")
    flag[1] = False  # as a killed run leaves a camera it was writing
    resumed = convert(root, store, benchmarks=("dataset",), participants=(17,), sequences=(SEQUENCE,), dataset=options)
    assert (resumed.videos_written, resumed.videos_skipped) == (1, 2)
    np.testing.assert_array_equal(open_group(store, 17, SEQUENCE, 4)[schema.IMAGES].values, before)


def test_corrected_and_uncorrected_frames_never_share_a_group(dataset_store, synthetic_dataset, tmp_path):
    store = tmp_path / "store.zarr"
    shutil.copytree(dataset_store, store)
    root = synthetic_dataset.parent
    for options, held in ((DatasetOptions(level=4), "colour-corrected"), (DatasetOptions(colour_correct=True),
                                                                           "uncorrected")):
        result = CliRunner().invoke(cli, ["convert", str(root), str(store), "-b", "dataset", "-p", "17", "-s",
                                          SEQUENCE, *(["--level", "4"] if options.level == 4 else []),
                                          *(["--colour-correct"] if options.colour_correct else [])])
        assert result.exit_code == 1, result.output
        message = result.output.strip().splitlines()[-1]
        assert f"holds {held} frames" in message and "--colour-correct" in message, message
    assert open_group(store, 17, SEQUENCE, 4).attrs[schema.COLOUR_CORRECTED_ATTR] is True


def test_cli_converts_a_camera_at_a_level_and_info_preview_and_the_loader_find_it(synthetic_dataset, tmp_path):
    store = tmp_path / "one.zarr"
    root = synthetic_dataset.parent
    runner = CliRunner()
    result = runner.invoke(cli, ["convert", str(root), str(store), "-b", "dataset", "-p", "18", "-s", SEQUENCE,
                                 "--cameras", "222200038", "--level", "2", "--colour-correct"])
    assert result.exit_code == 0, result.output
    assert "1 video written" in result.output
    group = open_group(store, 18, SEQUENCE, 2)
    assert group.attrs["video_serials"] == ["222200038"]
    assert list(group[schema.converted_flag(schema.IMAGES)].values) == [False, True, False]
    info = runner.invoke(cli, ["info", str(store)])
    assert info.exit_code == 0 and f"/level_2/dataset/18/{SEQUENCE}  [complete]" in info.output, info.output
    png = tmp_path / "sheet.png"
    shown = runner.invoke(cli, ["preview", str(store), "-p", "18", "-b", "dataset", "--level", "2", "-o", str(png)])
    assert shown.exit_code == 0 and png.stat().st_size > 0, shown.output
    rig = tmp_path / "rig.png"
    drawn = runner.invoke(cli, ["preview-rig", str(store), "-p", "18", "-b", "dataset", "--level", "2", "-o", str(rig)])
    assert drawn.exit_code == 0 and rig.stat().st_size > 0, drawn.output
    from nersemble_zarr.torch_dataset import FrameDataset, make_dataloader

    batch = next(iter(make_dataloader(store, "dataset", level=2, batch_size=2, shuffle=False)))
    width, height = CONFIG.frame_size()
    assert tuple(batch["image"].shape) == (2, 3, height // 2, width // 2) and list(batch["timestep"]) == [0, 1]
    frames = FrameDataset(store, "dataset", level=2)
    assert len(frames) == CONFIG.n_frames and frames.item_key(0) == (f"level_2/dataset/18/{SEQUENCE}", "222200038", 0)
    item = frames[0]
    assert tuple(item["image"].shape) == (3, height // 2, width // 2)
    np.testing.assert_allclose(item["intrinsics"].numpy(), group[schema.INTRINSICS].values[1], rtol=1e-6)
    with pytest.raises(StoreError, match="converted straight to a level|no stored frames"):
        FrameDataset(store, "dataset", level=1)


# ---------------------------------------------------------------- bad input: one sentence, nothing left behind
def _refused(root: Path, store: Path, *arguments: str, source: str = "dataset") -> str:
    result = CliRunner().invoke(cli, ["convert", str(root), str(store), "-b", source, *arguments])
    assert result.exit_code in (1, 2), result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("Error:") and message.count(". ") <= 1, message
    assert not store.exists(), f"a refused run left {store}"
    return message


def test_unknown_names_are_refused_before_anything_is_written(synthetic_dataset, tmp_path):
    root, store = synthetic_dataset.parent, tmp_path / "s.zarr"
    assert "Participant 99 is not listed" in _refused(root, store, "-p", "99")
    assert "SEN-99" in _refused(root, store, "-p", "17", "-s", "SEN-99")
    assert "apply to the dataset only" in _refused(root, store, "--level", "2", source="nvs")
    assert "invalid" in _refused(root, store, "--level", "0").lower()


def test_bad_files_are_named_in_one_sentence(synthetic_dataset, tmp_path):
    root = copy_dataset(synthetic_dataset, tmp_path)
    store = tmp_path / "s.zarr"
    folder = root / "dataset" / "017"
    video = folder / "sequences" / SEQUENCE / "images" / "cam_222200038.mp4"
    args = ("-p", "17", "-s", SEQUENCE)

    video.rename(video.with_name("gone.mp4"))
    assert "cam_222200038.mp4 was not fetched" in _refused(root, store, *args, "--cameras", "222200038")
    video.with_name("gone.mp4").rename(video)

    colour = folder / "calibration" / "color_calibration.json"
    colour.rename(colour.with_name("gone.json"))
    assert "color_calibration.json is missing" in _refused(root, store, *args, "--colour-correct")
    colour.with_name("gone.json").rename(colour)

    matrices = json.loads(colour.read_text())
    del matrices["222200039"]
    colour.write_text(json.dumps(matrices))
    assert "has no matrix for camera 222200039" in _refused(root, store, *args, "--colour-correct")
    colour.write_text("{")
    assert "color_calibration.json" in _refused(root, store, *args)
    shutil.copy(synthetic_dataset / "017/calibration/color_calibration.json", colour)

    cameras = folder / "calibration" / "camera_params.json"
    document = json.loads(cameras.read_text())
    del document["world_2_cam"]["222200037"]
    cameras.write_text(json.dumps(document))
    assert "has no camera 222200037" in _refused(root, store, *args)
    cameras.write_text("[1, 2")
    assert "camera_params.json" in _refused(root, store, *args)
    cameras.unlink()
    assert "camera_params.json is missing" in _refused(root, store, *args)
    shutil.copy(synthetic_dataset / "017/calibration/camera_params.json", cameras)

    background = folder / "sequences" / "BACKGROUND" / "image_222200037.jpg"
    whole = background.read_bytes()
    background.write_bytes(whole[:200])  # the header cut: refused while planning
    assert "image_222200037.jpg is not a readable JPEG" in _refused(root, store, *args)
    background.write_bytes(whole[: len(whole) // 2])  # the pixels cut: refused when decoded, the new store removed
    assert "image_222200037.jpg cannot be decoded" in _refused(root, store, *args)
    shutil.copy(synthetic_dataset / "017/sequences/BACKGROUND/image_222200037.jpg", background)

    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    message = _refused(root, store, *args)
    assert "cam_222200038.mp4" in message and ("corrupt" in message or "frames" in message), message


def test_missing_fetches_are_named(synthetic_dataset, tmp_path):
    with pytest.raises(InputDataError, match="No fetched dataset under"):
        convert(tmp_path, tmp_path / "s.zarr", benchmarks=("dataset",))
    root = copy_dataset(synthetic_dataset, tmp_path)
    shutil.rmtree(root / "dataset" / "018" / "sequences")
    shutil.rmtree(root / "dataset" / "018" / "calibration")  # a folder with nothing to convert is passed over
    summary = convert(root, tmp_path / "all.zarr", benchmarks=("dataset",), workers=2)
    assert summary.sequences == [f"dataset/17/{name}" for name in CONFIG.sequences_of(17)]
    shutil.rmtree(root / "dataset" / "018")
    with pytest.raises(InputDataError, match="Participant 18 was not fetched"):
        convert(root, tmp_path / "s.zarr", benchmarks=("dataset",), participants=(18,))
    with pytest.raises(CatalogueError, match="not listed"):
        convert(root, tmp_path / "s.zarr", benchmarks=("dataset",), participants=(17,), sequences=("FREE",))
    with pytest.raises(ConfigError, match="too coarse"):
        convert(root, tmp_path / "s.zarr", benchmarks=("dataset",), participants=(17,), sequences=(SEQUENCE,),
                dataset=DatasetOptions(level=200))
    assert not (tmp_path / "s.zarr").exists()


# ---------------------------------------------------------------- the drop-in data managers over the store
def test_the_drop_in_over_the_store_agrees_with_the_kit_on_the_folder(dataset_store, synthetic_dataset):
    from nersemble_zarr import compat

    assert compat.NeRSembleDataManager(dataset_store).list_participants() == list(CONFIG.participants)
    for participant in CONFIG.participants:
        ours = compat.NeRSembleParticipantDataManager(dataset_store, participant)
        theirs = kit(synthetic_dataset, participant)
        assert ours.list_sequences() == sorted([SEQUENCE, LEVEL_ONLY])
        mine, official_cameras = ours.load_camera_calibration(), theirs.load_camera_calibration()
        assert list(mine.world_2_cam) == list(official_cameras.world_2_cam)
        for serial, pose in official_cameras.world_2_cam.items():
            np.testing.assert_array_equal(mine.world_2_cam[serial], np.asarray(pose))
        np.testing.assert_array_equal(mine.intrinsics, np.asarray(official_cameras.intrinsics))
        official_colour = theirs.load_color_calibration()
        assert list(ours.load_color_calibration()) == list(official_colour)
        for serial, matrix in official_colour.items():
            np.testing.assert_array_equal(ours.load_color_calibration()[serial], matrix)
        assert ours.list_cameras(SEQUENCE) == sorted(theirs.list_cameras(SEQUENCE))
        assert ours.get_n_timesteps(SEQUENCE) == theirs.get_n_timesteps(SEQUENCE) == CONFIG.n_frames
        serial = CONFIG.serials[1]
        for options in ({"as_uint8": True}, {}, {"as_uint8": True, "apply_color_correction": True},
                        {"apply_color_correction": True}, {"as_uint8": True, "downscale_factor": 2}):
            image, expected = (manager.load_image(SEQUENCE, serial, 2, **options) for manager in (ours, theirs))
            assert image.shape == expected.shape and image.dtype == expected.dtype, options
            scale = 1 if image.dtype == np.uint8 else 255
            assert np.abs(image.astype(np.float64) - expected).max() * scale <= 1 + 1e-9, options


def test_the_drop_in_reads_a_level_4_corrected_group_for_downscale_factor_4(dataset_store, synthetic_dataset):
    """The issue's call: load_image(..., downscale_factor=4, apply_color_correction=True) reads the stored level
    (W // 4 x H // 4, area-averaged then corrected), equal within one level to the official correct_color of the
    area average of the kit's frame; a level-only sequence is read too."""
    from nersemble_zarr import compat

    width, height = CONFIG.frame_size()
    for participant in CONFIG.participants:
        ours = compat.NeRSembleParticipantDataManager(dataset_store, participant)
        theirs = kit(synthetic_dataset, participant)
        for sequence in (SEQUENCE, LEVEL_ONLY):
            for serial in CONFIG.serials:
                image = ours.load_image(sequence, serial, 3, as_uint8=True, apply_color_correction=True,
                                        downscale_factor=4)
                decoded = theirs.load_image(sequence, serial, 3, as_uint8=True)
                expected = official_correct_color(block_mean(decoded[None], 4)[0],
                                                  theirs.load_color_calibration()[serial])
                assert image.shape == (height // 4, width // 4, 3)
                assert np.abs(image.astype(int) - expected).max() <= 1
    with pytest.raises(InputDataError, match="holds only colour-corrected frames of EMO-1-shout\\+laugh at level 4"):
        ours.load_image(LEVEL_ONLY, CONFIG.serials[0], 0, as_uint8=True, downscale_factor=4)
    with pytest.raises(InputDataError, match="not at downscale_factor 2 nor at full resolution"):
        ours.load_image(LEVEL_ONLY, CONFIG.serials[0], 0, apply_color_correction=True, downscale_factor=2)
    # uncorrected frames at factor 4 come from the uncorrected full resolution, shrunk as the kit does
    shrunk = ours.load_image(SEQUENCE, CONFIG.serials[0], 1, as_uint8=True, downscale_factor=4)
    expected = theirs.load_image(SEQUENCE, CONFIG.serials[0], 1, as_uint8=True, downscale_factor=4)
    assert shrunk.shape == expected.shape and np.abs(shrunk.astype(int) - expected).max() <= 1
    with pytest.raises(InputDataError, match="Timestep 4 is out of range"):
        ours.load_image(SEQUENCE, CONFIG.serials[0], 4)
    with pytest.raises(InputDataError, match="no sequence 'FREE'"):
        ours.list_cameras("FREE")


# ---------------------------------------------------------------- many participants: a dask.distributed cluster
@pytest.mark.timeout(300)
def test_convert_on_a_local_cluster_equals_the_local_run(dataset_store, synthetic_dataset, tmp_path):
    from distributed import Client, LocalCluster

    store = tmp_path / "cluster.zarr"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = CliRunner().invoke(cli, [
            "convert", str(synthetic_dataset.parent), str(store), "-b", "dataset", "-p", "17,18", "-s", SEQUENCE,
            "--level", "4", "--colour-correct", "--scheduler", cluster.scheduler_address])
        assert result.exit_code == 0, result.output
        with Client(cluster) as client:
            assert len(client.run(lambda: None)) == 2
    for participant in CONFIG.participants:
        got, expected = (open_group(path, participant, SEQUENCE, 4) for path in (store, dataset_store))
        np.testing.assert_array_equal(got[schema.IMAGES].values, expected[schema.IMAGES].values)
        np.testing.assert_array_equal(got[schema.BACKGROUND].values, expected[schema.BACKGROUND].values)
        assert got.attrs[schema.CALIBRATION_JSON_ATTR] == expected.attrs[schema.CALIBRATION_JSON_ATTR]


def test_downsample_writes_levels_of_a_full_resolution_dataset_group(dataset_store, synthetic_dataset, tmp_path):

    store = tmp_path / "store.zarr"
    shutil.copytree(dataset_store, store)
    summary = downsample(store, [2], participants=[17])
    assert summary.sequences == [f"dataset/17/{SEQUENCE}"]  # the level-only sequence has no level 1 to average
    full, level_2 = open_group(store, 17, SEQUENCE), open_group(store, 17, SEQUENCE, 2)
    np.testing.assert_array_equal(level_2[schema.IMAGES].values[1], block_mean(full[schema.IMAGES].values[1], 2))
    np.testing.assert_array_equal(level_2[schema.COLOUR_CORRECTION].values, full[schema.COLOUR_CORRECTION].values)
    np.testing.assert_allclose(level_2[schema.INTRINSICS].values, scale_intrinsics(full[schema.INTRINSICS].values, 2))
    assert level_2.attrs[schema.CALIBRATION_JSON_ATTR] == full.attrs[schema.CALIBRATION_JSON_ATTR]
    before = level_2[schema.IMAGES].values
    with pytest.raises(StoreError, match="was written by `downsample` from dataset/17/EXP-1-head; it is left as it is"):
        convert(synthetic_dataset.parent, store, benchmarks=("dataset",), participants=(17,), sequences=(SEQUENCE,),
                dataset=DatasetOptions(level=2))
    np.testing.assert_array_equal(open_group(store, 17, SEQUENCE, 2)[schema.IMAGES].values, before)


# ---------------------------------------------------------------- downsample: a level equal to convert --level
PROVENANCE_ATTRS = {schema.CONVERTED_ATTR, "full_resolution_group", "resampling"}  # who wrote the level, and how


@pytest.fixture(scope="module")
def downsampled_and_converted(synthetic_dataset, tmp_path_factory) -> tuple[Path, Path]:
    """Participant 17's EXP-1-head converted at level 1 and downsampled to levels 2 and 4, and the same sequence
    converted straight to levels 2 and 4 (all uncorrected), in two stores."""
    root, folder = synthetic_dataset.parent, tmp_path_factory.mktemp("downsampled")
    downsampled, converted_levels = folder / "downsampled.zarr", folder / "converted.zarr"
    choice = {"benchmarks": ("dataset",), "participants": (17,), "sequences": (SEQUENCE,), "workers": 1}
    convert(root, downsampled, **choice)
    downsample(downsampled, [2, 4], workers=1)
    for level in (2, 4):
        convert(root, converted_levels, **choice, dataset=DatasetOptions(level=level))
    return downsampled, converted_levels


@pytest.mark.parametrize("level", [2, 4])
def test_downsample_of_a_dataset_group_equals_convert_at_that_level(downsampled_and_converted, level):
    """Same variables, coordinates, attributes (but who wrote it), chunking and codec, and identical pixels: the
    background too, and level 4 averaged from level 1 (a mean of level 2's rounded means differs by 1)."""
    downsampled, converted_levels = downsampled_and_converted
    ours, theirs = (open_group(store, 17, SEQUENCE, level) for store in downsampled_and_converted)
    assert sorted(ours.data_vars) == sorted(theirs.data_vars) == [schema.BACKGROUND, schema.IMAGES]
    assert sorted(ours.coords) == sorted(theirs.coords)
    for name in ours.coords:
        np.testing.assert_array_equal(ours[name].values, theirs[name].values, err_msg=name)
    assert ours[schema.converted_flag(schema.BACKGROUND)].values.all()
    assert {k: v for k, v in ours.attrs.items() if k not in PROVENANCE_ATTRS} == {
        k: v for k, v in theirs.attrs.items() if k not in PROVENANCE_ATTRS}
    assert ours.attrs["full_resolution_group"] == f"dataset/17/{SEQUENCE}"
    for name in ours.data_vars:
        assert {k: v for k, v in ours[name].attrs.items() if k != "resampling"} == theirs[name].attrs
        np.testing.assert_array_equal(ours[name].values, theirs[name].values, err_msg=name)
        arrays = [zarr.open_array(store, path=f"level_{level}/dataset/17/{SEQUENCE}/{name}", mode="r")
                  for store in (downsampled, converted_levels)]
        assert len({(a.shape, a.chunks, a.shards, str(a.metadata.codecs)) for a in arrays}) == 1, name


def test_downsample_resumes_a_background_and_adds_one_an_older_run_left_out(downsampled_and_converted, tmp_path):
    from nersemble_zarr.errors import LockError

    store = tmp_path / "store.zarr"
    shutil.copytree(downsampled_and_converted[0], store)
    expected = {level: open_group(store, 17, SEQUENCE, level) for level in (2, 4)}
    expected = {level: (group[schema.IMAGES].values, group[schema.BACKGROUND].values)
                for level, group in expected.items()}
    level_2 = f"level_2/dataset/17/{SEQUENCE}"
    zarr.open_array(store, path=f"{level_2}/background", mode="r+")[1] = 7  # a run killed mid-camera
    zarr.open_array(store, path=f"{level_2}/background_converted", mode="r+")[1] = False
    with storage.writer_lock(store), pytest.raises(LockError, match="Another run writing the store"):
        downsample(store, [2, 4])
    assert not zarr.open_array(store, path=f"{level_2}/background_converted", mode="r")[1]
    resumed = downsample(store, [2, 4])
    assert (resumed.cameras_written, resumed.cameras_skipped) == (1, 2)
    # a level 4 written before downsample carried backgrounds: the variable is added and written for every camera
    level_4 = zarr.open_group(store, path=f"level_4/dataset/17/{SEQUENCE}", mode="r+")
    layout = (dict(level_4.attrs), sorted(open_group(store, 17, SEQUENCE, 4).coords))
    del level_4["background"], level_4["background_converted"]
    storage.consolidate(store)
    assert schema.BACKGROUND not in open_group(store, 17, SEQUENCE, 4)
    added = downsample(store, [4])
    assert (added.cameras_written, added.cameras_skipped) == (3, 0)
    attrs = dict(zarr.open_group(store, path=f"level_4/dataset/17/{SEQUENCE}", mode="r").attrs)
    assert (attrs, sorted(open_group(store, 17, SEQUENCE, 4).coords)) == layout  # its coordinates kept
    for level, (images, background) in expected.items():
        group = open_group(store, 17, SEQUENCE, level)
        np.testing.assert_array_equal(group[schema.IMAGES].values, images)
        np.testing.assert_array_equal(group[schema.BACKGROUND].values, background)
        assert group[schema.converted_flag(schema.BACKGROUND)].values.all()
    assert downsample(store, [2, 4]).cameras_written == 0


def test_downsample_never_mixes_uncorrected_frames_into_a_corrected_level(dataset_store, tmp_path):
    """dataset_store's level 4 of EXP-1-head was converted colour-corrected, its level 1 is not: downsampling it to
    level 4 is refused in one sentence before anything is written (level 2 included)."""
    store = tmp_path / "store.zarr"
    shutil.copytree(dataset_store, store)
    result = CliRunner().invoke(cli, ["downsample", str(store), "--levels", "2,4", "-p", "17", "-j", "1"])
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()[-1]
    assert message == (f"Error: The store's level_4/dataset/17/{SEQUENCE} holds colour-corrected frames and "
                       f"dataset/17/{SEQUENCE} uncorrected ones, which one group never mixes; leave level 4 out of "
                       "--levels or downsample into another store."), message
    assert "level_2" not in zarr.open_group(store, mode="r", use_consolidated=False)
    flags = zarr.open_array(store, path=f"level_4/dataset/17/{SEQUENCE}/images_converted", mode="r")[:]
    assert flags.all()  # the corrected level as convert left it


# ---------------------------------------------------------------- info on dataset groups
def info_blocks(store: Path) -> dict[str, list[str]]:
    """``nersemble-zarr info``'s text: the description lines (not the array rows) under each group's path."""
    result = CliRunner().invoke(cli, ["info", str(store)])
    assert result.exit_code == 0, result.output
    blocks: dict[str, list[str]] = {}
    for line in result.output.splitlines()[1:]:
        if line.startswith("  /"):
            current = blocks.setdefault(line.strip(), [])
        elif line.startswith("    ") and "('" not in line:  # an array row shows its dims as a tuple of names
            current.append(line.strip())
    return blocks


def test_info_describes_frames_background_pictures_correction_and_level(dataset_store, downsampled_and_converted,
                                                                        tmp_path):
    width, height = CONFIG.frame_size()
    serials = ", ".join(CONFIG.serials)
    blocks = info_blocks(dataset_store)
    assert blocks[f"/dataset/17/{SEQUENCE}  [complete]"] == [
        f"full resolution: frames of {width}x{height} pixels",
        f"timesteps: {CONFIG.n_frames} timesteps, original frames 0..{CONFIG.n_frames - 1}",
        f"cameras (3, 3 with frames, no hold-out): {serials}",
        "frames as decoded, not colour-corrected (3x3 colour_correction matrices stored)",
        f"background pictures (3 cameras, one picture each, no timestep): {serials}",
    ]
    assert blocks[f"/level_4/dataset/18/{LEVEL_ONLY}  [complete]"][0] == (
        f"resolution level 4: frames of {width // 4}x{height // 4} pixels (full resolution {width}x{height} pixels), "
        "area-averaged")
    assert "frames colour-corrected with the cameras' 3x10 colour_correction matrices" in blocks[
        f"/level_4/dataset/18/{LEVEL_ONLY}  [complete]"]
    assert not any("video" in line for lines in blocks.values() for line in lines)
    report = json.loads(CliRunner().invoke(cli, ["info", str(dataset_store), "--json"]).output)
    level_only = next(s for s in report["sequences"] if s["path"] == f"level_4/dataset/17/{LEVEL_ONLY}")
    assert (level_only["level"], level_only["frame_size"], level_only["full_size"]) == (
        4, [height // 4, width // 4], [height, width])
    assert (level_only["colour_corrected"], level_only["colour_terms"]) == (True, 3)
    assert level_only["background_serials"] == list(CONFIG.serials)
    # a downsample killed before a camera's background picture was flagged: the level is incomplete and says why
    store = tmp_path / "store.zarr"
    shutil.copytree(downsampled_and_converted[0], store)
    zarr.open_array(store, path=f"level_2/dataset/17/{SEQUENCE}/background_converted", mode="r+")[1] = False
    lines = info_blocks(store)[f"/level_2/dataset/17/{SEQUENCE}  [INCOMPLETE]"]
    assert lines[-1] == f"! background: the picture of camera(s) {CONFIG.serials[1]} not written yet", lines
