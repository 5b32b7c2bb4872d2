"""nersemble_zarr.compat against the official toolkit (nersemble-benchmark 0.2.0) on the synthetic benchmark.

The official README's examples run with only their import lines changed, on a fetched folder and on a
store; every returned array is compared with what the official classes return on the same folder.
"""

from __future__ import annotations

import functools
import gc
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nersemble_zarr.errors import SubmissionError
from nersemble_zarr.flame.standin import write_standin_flame
from nersemble_zarr.synthetic import SyntheticConfig
from nersemble_zarr.synthetic.generator import mono_metadata, nvs_metadata
from nersemble_zarr.synthetic.server import serve

official_data = pytest.importorskip("nersemble_benchmark.data.benchmark_data")
official_constants = pytest.importorskip("nersemble_benchmark.constants")

# OpenCV (the official load_frame) and PyAV convert YUV to RGB with slightly different rounding.
DECODER_ROUNDING = 3 / 255


@pytest.fixture(scope="module")
def flame_dir(tmp_path_factory) -> Path:
    """The stand-in FLAME (plain pickle, which the official flame_model package reads) with embeddings."""
    folder = tmp_path_factory.mktemp("compat_flame")
    write_standin_flame(folder, seed=0, chumpy_objects=False)
    return folder


@pytest.fixture(params=["folder", "store"])
def location(request, synthetic_root, converted) -> Path:
    """Where our data managers read from: the fetched folder or the converted store."""
    return synthetic_root if request.param == "folder" else converted


@pytest.fixture
def official_flame(monkeypatch, flame_dir):
    """The official FlameProvider, pointed at the stand-in folder instead of ~/.cache/FLAME."""
    import flame_model
    from nersemble_benchmark.models import flame as official

    monkeypatch.setattr(official, "FlameConfig", functools.partial(flame_model.FlameConfig, flame_folder=str(flame_dir)))
    return official.FlameProvider


def test_constants_equal_the_official_ones():
    from nersemble_zarr.compat import constants

    names = [n for n in dir(official_constants) if n.isupper() and n != "NERSEMBLE_ACCESS_FORM_URL"]
    assert len(names) > 15
    for name in names:
        assert getattr(constants, name) == getattr(official_constants, name), name


def test_nvs_readme_example_returns_what_the_official_manager_returns(location, synthetic_root):
    # The README's section 3.1/3.2 with the imports changed.
    from nersemble_zarr.compat import NVSDataManager
    from nersemble_zarr.compat.constants import BENCHMARK_NVS_IDS_AND_SEQUENCES, BENCHMARK_NVS_TRAIN_SERIALS

    benchmark_folder = location
    participant_id, sequence_name = BENCHMARK_NVS_IDS_AND_SEQUENCES[0]
    serial = BENCHMARK_NVS_TRAIN_SERIALS[0]
    timestep = 0
    data_manager = NVSDataManager(benchmark_folder, participant_id)
    image = data_manager.load_image(sequence_name, serial, timestep)
    alpha = data_manager.load_alpha_map(sequence_name, serial, timestep)
    camera_params = data_manager.load_camera_calibration()
    world_2_cam_pose = camera_params.world_2_cam[serial]
    intrinsics = camera_params.intrinsics[serial]
    points, colors, normals = data_manager.load_pointcloud(sequence_name, timestep)

    official = official_data.NVSDataManager(str(synthetic_root), participant_id)
    expected_image = official.load_image(sequence_name, serial, timestep)
    assert image.dtype == expected_image.dtype == np.float64 and image.shape == expected_image.shape
    np.testing.assert_allclose(image, expected_image, atol=DECODER_ROUNDING)
    expected_alpha = official.load_alpha_map(sequence_name, serial, timestep)
    assert alpha.dtype == np.uint8 and alpha.shape == expected_alpha.shape
    np.testing.assert_allclose(alpha, expected_alpha, atol=3)
    expected_cameras = official.load_camera_calibration()
    assert set(camera_params.world_2_cam) == set(expected_cameras.world_2_cam)
    assert world_2_cam_pose.dtype == intrinsics.dtype == np.float32
    np.testing.assert_array_equal(world_2_cam_pose, np.asarray(expected_cameras.world_2_cam[serial]))
    np.testing.assert_array_equal(intrinsics, np.asarray(expected_cameras.intrinsics[serial]))
    for ours, theirs in zip((points, colors, normals), official.load_pointcloud(sequence_name, timestep)):
        assert ours.dtype == theirs.dtype == np.float32
        np.testing.assert_array_equal(ours, theirs)


def test_listing_and_all_images_follow_the_official_semantics(location, synthetic_root):
    from nersemble_zarr.compat import NVSDataManager

    ours = NVSDataManager(location, 388)
    official = official_data.NVSDataManager(str(synthetic_root), 388)
    assert ours.list_sequences() == official.list_sequences() == ["GLASSES"]
    assert sorted(ours.list_serials("GLASSES")) == sorted(official.list_serials("GLASSES"))
    assert ours.get_n_timesteps("GLASSES") == official.get_n_timesteps("GLASSES") == 6
    assert ours.list_timesteps("GLASSES") == official.list_timesteps("GLASSES")
    serial = "222200040"
    for options in ({}, {"as_uint8": True, "every_nth_frame": 2}, {"every_nth_frame": 4, "scale": 0.5}):
        mine = ours.load_all_images("GLASSES", serial, **options)
        # The official every_nth_frame path asks imageio for the frame count without naming a plugin: with
        # imageio-ffmpeg installed (the bench extra) it gets inf and fails; take every n-th of all frames instead.
        step = options.pop("every_nth_frame", 1)
        theirs = official.load_all_images("GLASSES", serial, **options)[::step]
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            assert a.dtype == b.dtype and a.shape == b.shape
            # Both decode every frame with PyAV here; a store holds the frames convert decoded with PyAV.
            np.testing.assert_allclose(a, b, atol=1 if a.dtype == np.uint8 else 1 / 255)
    assert ours.has_video("GLASSES", serial) and not ours.has_video("GLASSES", "222200046")


def test_mono_readme_example_gives_the_official_tracking_and_meshes(location, synthetic_root, flame_dir, official_flame):
    # The README's section 3.3 with the imports changed (and the FLAME folder named: the stand-in).
    from nersemble_zarr.compat import FlameProvider, MonoFlameAvatarDataManager

    benchmark_folder, participant_id, sequence_name, timestep = location, 393, "EXP-1-head", 2
    mono_flame_data_manager = MonoFlameAvatarDataManager(benchmark_folder, participant_id)
    flame_tracking = mono_flame_data_manager.load_flame_tracking(sequence_name)
    flame_provider = FlameProvider(flame_tracking, flame_dir=flame_dir, device="cpu")
    mesh = flame_provider.get_mesh(timestep)

    official_tracking = official_data.MonoFlameAvatarDataManager(str(synthetic_root), participant_id).load_flame_tracking(
        sequence_name)
    for field in ("shape", "expression", "rotation", "rotation_matrices", "translation", "jaw", "frames", "scale",
                  "neck", "eyes"):
        ours, theirs = getattr(flame_tracking, field), getattr(official_tracking, field)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, field
        np.testing.assert_array_equal(ours, theirs, err_msg=field)
    official_provider = official_flame(official_tracking)
    expected = official_provider.get_mesh(timestep)
    assert type(mesh) is type(expected)
    np.testing.assert_allclose(mesh.vertices, expected.vertices, atol=1e-5)
    np.testing.assert_array_equal(mesh.faces, expected.faces)
    for t in range(len(flame_tracking.frames)):
        np.testing.assert_allclose(flame_provider.get_vertices(t), official_provider.get_vertices(t), atol=1e-5)
        np.testing.assert_allclose(flame_provider.get_landmarks(t), official_provider.get_landmarks(t), atol=1e-5)
        np.testing.assert_allclose(flame_provider.get_model_to_world_transformation(t),
                                   np.asarray(official_provider.get_model_to_world_transformation(t)), atol=1e-6)
    assert flame_provider.has_mesh(5) and not flame_provider.has_mesh(6) and not flame_provider.has_mesh(-1)


def test_a_test_sequence_has_tracking_and_its_length_in_a_store(converted, synthetic_root):
    from nersemble_zarr.compat import MonoFlameAvatarDataManager

    from_store = MonoFlameAvatarDataManager(converted, 393)
    assert from_store.list_sequences() == ["EXP-1-head", "FREE"]
    assert from_store.get_n_timesteps("FREE") == 6 and from_store.list_serials("FREE") == []
    expected = official_data.MonoFlameAvatarDataManager(str(synthetic_root), 393).load_flame_tracking("FREE")
    np.testing.assert_array_equal(from_store.load_flame_tracking("FREE").expression, expected.expression)


# ---------------------------------------------------------------- submissions
N_FRAMES = 2


@pytest.fixture(scope="module")
def metadata_url(tmp_path_factory):
    """A loopback server of metadata.json for every benchmark sequence, N_FRAMES frames each, for the
    official reader (which downloads it)."""
    folder = tmp_path_factory.mktemp("compat_metadata")
    config = SyntheticConfig(n_frames=N_FRAMES)
    for benchmark, content in (("nvs", nvs_metadata(config)), ("mono_flame_avatar", mono_metadata(config))):
        (folder / benchmark).mkdir()
        (folder / benchmark / "metadata.json").write_text(json.dumps(content))
    with serve(folder) as server:
        yield server.url


@pytest.fixture
def official_readers(monkeypatch, metadata_url):
    from nersemble_benchmark.data import submission_data
    from nersemble_benchmark.util import metadata

    monkeypatch.setattr(metadata, "NERSEMBLE_BENCHMARK_URL_NVS", f"{metadata_url}/nvs")
    monkeypatch.setattr(metadata, "NERSEMBLE_BENCHMARK_URL_MONO_FLAME_AVATAR", f"{metadata_url}/mono_flame_avatar")
    return submission_data


def rendered(n_frames: int, width: int, height: int, seed: int):
    """A generator of frames, as a renderer would yield them."""
    rng = np.random.default_rng(seed)
    for t in range(n_frames):
        frame = np.zeros((height, width, 3), dtype=np.uint8)
        frame[:, : width // 2] = rng.integers(0, 255, 3, dtype=np.uint8)
        frame[t::7] = 200
        yield frame


def mono_counts(n: int = N_FRAMES) -> dict:
    from nersemble_zarr import catalogue

    return {key: n for key in catalogue.submission_sequences("mono_flame_avatar")}


def test_mono_zip_written_from_generators_validates_with_the_official_reader(tmp_path, official_readers):
    # The README's section 4.2 with the import changed; images are generators here.
    from nersemble_zarr.compat import MonoFlameAvatarSubmissionDataReader, MonoFlameAvatarSubmissionDataWriter
    from nersemble_zarr.compat.constants import BENCHMARK_MONO_FLAME_AVATAR_IDS, BENCHMARK_MONO_FLAME_AVATAR_SEQUENCES_TEST, \
        BENCHMARK_MONO_FLAME_AVATAR_SERIALS

    zip_path = tmp_path / "out" / "mono_submission.zip"
    with MonoFlameAvatarSubmissionDataWriter(zip_path) as submission_data_manager:
        for participant in BENCHMARK_MONO_FLAME_AVATAR_IDS:
            for sequence_name in BENCHMARK_MONO_FLAME_AVATAR_SEQUENCES_TEST:
                for serial in BENCHMARK_MONO_FLAME_AVATAR_SERIALS:
                    images = rendered(N_FRAMES, 512, 512, participant)
                    submission_data_manager.add_video(participant, sequence_name, serial, images)
    assert official_readers.MonoFlameAvatarSubmissionDataReader(str(zip_path)).validate_submission() == {}
    ours = MonoFlameAvatarSubmissionDataReader(zip_path, frame_counts=mono_counts())
    assert ours.validate_submission() == {}
    assert ours.is_complete() and ours.report().ok
    assert sorted(p.name for p in zip_path.parent.iterdir()) == ["mono_submission.zip"]  # no temporaries left
    with zipfile.ZipFile(zip_path) as archive:
        assert len(archive.namelist()) == 80


def test_nvs_issues_match_the_official_reader(tmp_path, official_readers):
    from nersemble_zarr.compat import NVSSubmissionDataReader, NVSSubmissionDataWriter

    zip_path = tmp_path / "nvs.zip"
    with NVSSubmissionDataWriter(zip_path) as writer:
        writer.add_video(388, "GLASSES", "222200046", rendered(N_FRAMES, 1100, 1604, 0))
        writer.add_video(388, "GLASSES", "222200037", list(rendered(N_FRAMES + 1, 1100, 1604, 1)))
    expected = official_readers.NVSSubmissionDataReader(str(zip_path)).validate_submission()
    counts = {(p, s): N_FRAMES for p, s in official_constants.BENCHMARK_NVS_IDS_AND_SEQUENCES}
    found = NVSSubmissionDataReader(zip_path, frame_counts=counts).validate_submission()
    assert found == expected
    assert len(found["missing_files"]) == 13 and found["wrong_frame_counts"] == [
        ("388/GLASSES/cam_222200037.mp4", N_FRAMES + 1, N_FRAMES)]


def test_a_failed_or_unclosed_writer_leaves_the_old_zip(tmp_path):
    from nersemble_zarr.compat import MonoFlameAvatarSubmissionDataWriter

    zip_path = tmp_path / "submission.zip"
    zip_path.write_bytes(b"the previous submission")
    with pytest.raises(RuntimeError, match="renderer crashed"):
        with MonoFlameAvatarSubmissionDataWriter(zip_path) as writer:
            writer.add_video(393, "FREE", "222200037", rendered(3, 512, 512, 0))
            raise RuntimeError("renderer crashed")
    writer = MonoFlameAvatarSubmissionDataWriter(zip_path)
    writer.add_video(393, "FREE", "222200037", rendered(3, 512, 512, 0))
    del writer
    gc.collect()
    assert zip_path.read_bytes() == b"the previous submission"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.zip"]


def broken_renderer():
    yield np.zeros((512, 512, 3), dtype=np.uint8)
    raise RuntimeError("out of GPU memory")


@pytest.mark.parametrize(
    ("args", "frames", "message"),
    [
        ((392, "FREE", "222200037"), None, "Invalid participant_id 392"),
        ((393, "EXP-1-head", "222200037"), None, "only the hold-out sequences"),
        ((393, "FREE", "222200042"), None, "Invalid serial '222200042'"),
        ((393, "FREE", "222200037"), [np.zeros((512, 512, 3), np.float32)], "dtype float32"),
        ((393, "FREE", "222200037"), [np.zeros((512, 510, 3), np.uint8)], "is 510x512"),
        ((393, "FREE", "222200037"), [np.zeros((512, 512, 3), np.uint8), np.zeros((512, 512), np.uint8)],
         "Frame 1 of 393/FREE/cam_222200037.mp4 has shape"),
        ((393, "FREE", "222200037"), [], "No frames"),
    ],
)
def test_bad_videos_are_one_sentence_errors_and_the_writer_goes_on(tmp_path, args, frames, message):
    from nersemble_zarr.compat import MonoFlameAvatarSubmissionDataReader, MonoFlameAvatarSubmissionDataWriter

    zip_path = tmp_path / "submission.zip"
    with MonoFlameAvatarSubmissionDataWriter(zip_path) as writer:
        with pytest.raises(SubmissionError, match=message):
            writer.add_video(*args, frames if frames is not None else rendered(2, 512, 512, 0))
        with pytest.raises(RuntimeError, match="out of GPU memory"):
            writer.add_video(393, "FREE", "220700191", broken_renderer())
        writer.add_video(393, "FREE", "222200039", rendered(2, 512, 512, 0))
        with pytest.raises(SubmissionError, match="already added"):
            writer.add_video(393, "FREE", "222200039", rendered(2, 512, 512, 0))
    overview = MonoFlameAvatarSubmissionDataReader(zip_path, frame_counts=mono_counts()).get_file_overview()
    assert overview == {393: {"FREE": ["222200039"]}}


def test_the_writer_holds_only_a_few_frames_of_a_generator(tmp_path):
    """Frames are encoded as they come: when frame k is rendered, at most a handful of earlier ones are alive."""
    import weakref

    from nersemble_zarr.compat import MonoFlameAvatarSubmissionDataWriter

    alive_counts = []

    def tracked(n_frames: int):
        produced = []
        for frame in rendered(n_frames, 512, 512, 3):
            alive_counts.append(sum(ref() is not None for ref in produced))
            produced.append(weakref.ref(frame))
            yield frame
            del frame

    with MonoFlameAvatarSubmissionDataWriter(tmp_path / "s.zip") as writer:
        writer.add_video(393, "FREE", "222200037", tracked(60))
    assert len(alive_counts) == 60
    assert max(alive_counts) <= 12  # the official writer takes a list: all 59 earlier frames would be alive


def test_data_manager_errors_name_the_missing_thing(location, tmp_path):
    from nersemble_zarr.compat import MonoFlameAvatarDataManager, NVSDataManager
    from nersemble_zarr.errors import CatalogueError, NersembleError

    with pytest.raises(CatalogueError, match="Unknown participant 389"):
        NVSDataManager(location, 389)
    manager = NVSDataManager(location, 388)
    with pytest.raises(NersembleError, match="222200046"):
        manager.load_image("GLASSES", "222200046", 0)  # a hold-out camera: no video
    with pytest.raises(NersembleError, match="Timestep 6"):
        manager.load_image("GLASSES", "222200040", 6)
    with pytest.raises(NersembleError, match="point cloud"):
        manager.load_pointcloud("GLASSES", 1)  # frame indices are 0, 3, 6, ...
    with pytest.raises(NersembleError, match="SEN-10-port_strong_smokey"):
        MonoFlameAvatarDataManager(location, 393).load_flame_tracking("SEN-10-port_strong_smokey")
    with pytest.raises(NersembleError, match="out of range"):
        from nersemble_zarr.compat import FlameProvider

        FlameProvider(MonoFlameAvatarDataManager(location, 393).load_flame_tracking("FREE")).get_vertices(6)


def test_tracking_versions_and_image_keys_follow_the_official_ones(synthetic_root, converted):
    from nersemble_zarr.compat import ImageKey, MonoFlameAvatarDataManager
    from nersemble_zarr.errors import StoreError

    official = official_data.MonoFlameAvatarDataManager(str(synthetic_root), 393)
    older = MonoFlameAvatarDataManager(synthetic_root, 393).load_flame_tracking("FREE", version=1)
    expected = official.load_flame_tracking("FREE", version=1)
    np.testing.assert_array_equal(older.expression, expected.expression)
    assert not np.array_equal(older.expression, official.load_flame_tracking("FREE").expression)
    with pytest.raises(StoreError, match="not version 1"):
        MonoFlameAvatarDataManager(converted, 393).load_flame_tracking("FREE", version=1)
    key, official_key = ImageKey("EXP-4-lips", 6, "221501007"), official_data.ImageKey("EXP-4-lips", 6, "221501007")
    assert key.to_key() == official_key.to_key() == "EXP-4-lips_006_221501007"
    assert vars(key) == vars(official_key)


def test_readme_hold_out_camera_loops_give_the_official_cameras(location, synthetic_root):
    # README 4.1 (NVS) and 4.2 (mono, the participant and test sequence the synthetic benchmark has).
    from nersemble_zarr.compat import FlameProvider, MonoFlameAvatarDataManager, NVSDataManager
    from nersemble_zarr.compat.constants import BENCHMARK_MONO_FLAME_AVATAR_HOLD_OUT_SERIALS, \
        BENCHMARK_MONO_FLAME_AVATAR_TRAIN_SERIAL, BENCHMARK_NVS_HOLD_OUT_SERIALS

    seen = []
    for data_manager, official, serials in (
        (NVSDataManager(location, 388), official_data.NVSDataManager(str(synthetic_root), 388),
         BENCHMARK_NVS_HOLD_OUT_SERIALS),
        (MonoFlameAvatarDataManager(location, 393), official_data.MonoFlameAvatarDataManager(str(synthetic_root), 393),
         BENCHMARK_MONO_FLAME_AVATAR_HOLD_OUT_SERIALS + [BENCHMARK_MONO_FLAME_AVATAR_TRAIN_SERIAL]),
    ):
        camera_params, expected = data_manager.load_camera_calibration(), official.load_camera_calibration()
        for serial in serials:
            world_2_cam_pose = camera_params.world_2_cam[serial]
            intrinsics = camera_params.intrinsics[serial]
            np.testing.assert_array_equal(world_2_cam_pose, np.asarray(expected.world_2_cam[serial]))
            np.testing.assert_array_equal(intrinsics, np.asarray(expected.intrinsics[serial]))
            seen.append(serial)
    flame_tracking = MonoFlameAvatarDataManager(location, 393).load_flame_tracking("FREE")
    assert FlameProvider(flame_tracking).has_mesh(len(flame_tracking.frames) - 1)
    assert len(seen) == 7
