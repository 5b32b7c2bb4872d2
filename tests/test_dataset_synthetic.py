"""The synthetic NeRSemble v2 dataset, read by the official ``nersemble-data`` 0.0.6 kit, and compat's drop-in
data managers compared with the kit's on it (the kit's README calls, only the import changed)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import nersemble_data.util.metadata as official_metadata
from nersemble_data.constants import ASSETS
from nersemble_data.data import nersemble_data as official
from nersemble_data.util.color_correction import correct_color as official_correct_color
from nersemble_zarr import compat
from nersemble_zarr.errors import ConfigError, InputDataError
from nersemble_zarr.synthetic.dataset import expected_dataset_files, generate_dataset
from nersemble_zarr.synthetic.dataset_config import SyntheticDatasetConfig
from nersemble_zarr.video import probe

CONFIG = SyntheticDatasetConfig()  # what the synthetic_dataset fixture holds


@pytest.fixture
def kit_metadata(synthetic_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> official_metadata.NeRSembleMetadata:
    """The kit's CSV reader, pointed at the folder instead of the server (pandas reads both)."""
    monkeypatch.setattr(official_metadata, "NERSEMBLE_DATA_URL", str(synthetic_dataset))
    return official_metadata.NeRSembleMetadata()


def test_the_folder_holds_exactly_the_files_the_kit_downloads(synthetic_dataset, kit_metadata):
    """The kit's own path templates, filled with what its CSV reader lists, name every file written, no more."""
    kit_paths = set(ASSETS["global"].values())
    for participant in kit_metadata.list_participants():
        kit_paths |= {template.format(p_id=participant) for template in ASSETS["per_person"].values()}
        background = ASSETS["per_person_cam"]["backgrounds"]
        kit_paths |= {background.format(p_id=participant, serial=serial) for serial in CONFIG.serials}
        kit_paths |= {
            ASSETS["per_cam"]["images"].format(p_id=participant, seq_name=sequence, serial=serial)
            for sequence in kit_metadata.list_sequences_for_participant(participant) for serial in CONFIG.serials
        }
    written = {p.relative_to(synthetic_dataset).as_posix() for p in synthetic_dataset.rglob("*") if p.is_file()}
    assert written == kit_paths == set(expected_dataset_files(CONFIG))


def test_the_kit_reads_the_csvs_with_x_m_and_absent_cells(synthetic_dataset, kit_metadata):
    rows = list(csv.reader((synthetic_dataset / "metadata_sequences.csv").open()))
    assert rows[0][:3] == ["ID", "wears_glasses", "BACKGROUND"]
    cells = [cell for row in rows[1:] for cell in row[3:]]
    assert {"x", "m", ""} == set(cells)
    assert kit_metadata.list_participants() == [17, 18]
    assert kit_metadata.list_sequences() == ["BACKGROUND", *CONFIG.sequences]
    assert kit_metadata.list_sequences_for_participant(17) == list(CONFIG.sequences)  # x, x, m
    assert kit_metadata.list_sequences_for_participant(18) == list(CONFIG.sequences[:2])  # x, m, absent
    assert kit_metadata.list_sequences_for_participant(18, include_background=True)[0] == "BACKGROUND"


def test_the_kit_reads_calibration_with_one_shared_intrinsics(synthetic_dataset):
    for participant in CONFIG.participants:
        document = json.loads((synthetic_dataset / f"{participant:03d}/calibration/camera_params.json").read_text())
        kit = official.NeRSembleParticipantDataManager(str(synthetic_dataset), participant)
        cameras = kit.load_camera_calibration()
        assert list(cameras.world_2_cam) == list(CONFIG.serials)
        assert np.asarray(cameras.intrinsics).shape == (3, 3)
        np.testing.assert_allclose(cameras.intrinsics, document["intrinsics"], rtol=1e-6)
        width, height = CONFIG.frame_size()
        assert abs(cameras.intrinsics[0, 2] - width / 2) < 0.02 * width
        assert abs(cameras.intrinsics[1, 2] - height / 2) < 0.02 * width
        for serial, pose in cameras.world_2_cam.items():
            rotation = np.asarray(pose)[:3, :3]
            np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
            np.testing.assert_allclose(pose, document["world_2_cam"][serial], rtol=1e-6, atol=1e-7)


def test_the_kit_reads_near_identity_colour_matrices_of_two_term_counts(synthetic_dataset):
    terms = set()
    image = np.full((4, 4, 3), 128, dtype=np.uint8)
    for participant in CONFIG.participants:
        kit = official.NeRSembleParticipantDataManager(str(synthetic_dataset), participant)
        matrices = kit.load_color_calibration()
        assert list(matrices) == list(CONFIG.serials)
        for matrix in matrices.values():
            assert matrix.shape[0] == 3
            terms.add(matrix.shape[1])
            assert np.abs(matrix[:, :3] - np.eye(3)).max() < 0.2
            shift = np.abs(official_correct_color(image, matrix).astype(int) - 128).max()
            assert 0 < shift < 30
    assert len(terms) == 2


def test_videos_are_h264_at_73_fps_and_backgrounds_are_jpegs(synthetic_dataset):
    width, height = CONFIG.frame_size()
    assert abs(width / height - 2200 / 3208) < 0.01
    video = synthetic_dataset / "017/sequences/EXP-1-head/images/cam_222200037.mp4"
    info = probe(video)
    assert (info.codec, info.fps, info.width, info.height, info.n_frames) == ("h264", 73.0, width, height, 4)
    kit = official.NeRSembleParticipantDataManager(str(synthetic_dataset), 17)
    frame = kit.load_image("EXP-1-head", "222200037", 0, as_uint8=True)
    background = cv2.imread(str(synthetic_dataset / "017/sequences/BACKGROUND/image_222200037.jpg"))[..., ::-1]
    assert frame.shape == background.shape == (height, width, 3)
    differs = np.abs(frame.astype(int) - background).max(axis=-1) > 40
    assert 0.05 < differs.mean() < 0.6  # the head covers part of the frame; elsewhere the video shows the studio


@pytest.mark.slow  # one full-size frame rendered and encoded: 15 s on the project's shared cores
def test_full_size_on_request(tmp_path):
    config = SyntheticDatasetConfig.full_size(participants=(17,), sequences=("EXP-1-head",), serials=("222200037",),
                                              n_frames=1)
    root = generate_dataset(tmp_path / "dataset", config)
    info = probe(root / "017/sequences/EXP-1-head/images/cam_222200037.mp4")
    assert (info.width, info.height, info.n_frames) == (2200, 3208, 1)
    intrinsics = json.loads((root / "017/calibration/camera_params.json").read_text())["intrinsics"]
    assert abs(intrinsics[0][2] - 1100) < 25 and abs(intrinsics[1][2] - 1604) < 25


def test_the_same_config_writes_the_same_bytes_and_reports_each_file(synthetic_dataset, tmp_path):
    class Recorder:
        def __init__(self):
            self.total, self.done, self.described = None, 0, []

        def set_total(self, total):
            self.total = total

        def describe(self, text):
            self.described.append(text)

        def __call__(self, advance):
            self.done += advance

    recorder = Recorder()
    again = generate_dataset(tmp_path / "again", progress=recorder)
    assert recorder.total == recorder.done == len(recorder.described) == len(expected_dataset_files(CONFIG))
    assert recorder.described == expected_dataset_files(CONFIG)
    for relative in expected_dataset_files(CONFIG):
        assert (again / relative).read_bytes() == (synthetic_dataset / relative).read_bytes(), relative


def test_config_refuses_bad_values():
    for changes in ({"scale": 0}, {"n_frames": 0}, {"participants": (17, 17)}, {"sequences": ("BACKGROUND",)},
                    {"serials": ("123",)}):
        with pytest.raises(ConfigError):
            SyntheticDatasetConfig(**changes)


# ---------------------------------------------------------------- the drop-in against the kit
def _readme_calls(module, nersemble_folder: str) -> dict:
    """The kit README's data-manager lines (section 4), for every participant, sequence and camera."""
    data_folder = module.NeRSembleDataManager(nersemble_folder)
    result = {"participants": sorted(data_folder.list_participants())}
    for participant_id in result["participants"]:
        data_manager = module.NeRSembleParticipantDataManager(nersemble_folder, participant_id)
        sequences = sorted(s for s in data_manager.list_sequences() if s != "BACKGROUND")
        camera_calibration = data_manager.load_camera_calibration()
        result[participant_id] = {
            "sequences": sequences,
            "world_2_cam": {s: np.asarray(m) for s, m in camera_calibration.world_2_cam.items()},
            "intrinsics": np.asarray(camera_calibration.intrinsics),
            "color_calibration": data_manager.load_color_calibration(),
        }
        for sequence_name in sequences:
            cameras = sorted(data_manager.list_cameras(sequence_name))
            result[participant_id][sequence_name] = {
                "cameras": cameras,
                "n_timesteps": data_manager.get_n_timesteps(sequence_name),
                "timesteps": data_manager.list_timesteps(sequence_name),
            }
            serial, timestep = cameras[0], 2
            result[participant_id][sequence_name]["images"] = [
                data_manager.load_image(sequence_name, serial, timestep),
                data_manager.load_image(sequence_name, serial, timestep, as_uint8=True),
                data_manager.load_image(sequence_name, serial, timestep, apply_color_correction=True),
                data_manager.load_image(sequence_name, serial, timestep, as_uint8=True, apply_color_correction=True),
                data_manager.load_image(sequence_name, serial, timestep, as_uint8=True, downscale_factor=2),
            ]
    return result


def test_the_readme_calls_agree_with_the_kit(synthetic_dataset):
    assert_readme_calls_agree(synthetic_dataset, [17, 18])
    ours_17 = compat.NeRSembleParticipantDataManager(str(synthetic_dataset), 17)
    assert ours_17.list_sequences() == sorted(CONFIG.sequences)  # the kit's also lists BACKGROUND


def assert_readme_calls_agree(folder: Path, participants: list[int]) -> None:
    """The README's calls on ``folder`` (which holds ``participants``): calibrations equal, images within a level."""
    ours, theirs = (_readme_calls(module, str(folder)) for module in (compat, official))
    assert ours["participants"] == theirs["participants"] == participants
    for participant in ours["participants"]:
        mine, kit = ours[participant], theirs[participant]
        assert mine["sequences"] == kit["sequences"]
        assert list(mine["world_2_cam"]) == list(kit["world_2_cam"])
        for serial in kit["world_2_cam"]:
            assert mine["world_2_cam"][serial].dtype == kit["world_2_cam"][serial].dtype == np.float32
            np.testing.assert_array_equal(mine["world_2_cam"][serial], kit["world_2_cam"][serial])
        np.testing.assert_array_equal(mine["intrinsics"], kit["intrinsics"])
        assert mine["intrinsics"].dtype == kit["intrinsics"].dtype
        assert list(mine["color_calibration"]) == list(kit["color_calibration"])
        for serial, matrix in kit["color_calibration"].items():
            np.testing.assert_array_equal(mine["color_calibration"][serial], matrix)
        for sequence in kit["sequences"]:
            assert {k: mine[sequence][k] for k in ("cameras", "n_timesteps", "timesteps")} == \
                   {k: kit[sequence][k] for k in ("cameras", "n_timesteps", "timesteps")}
            for image, expected in zip(mine[sequence]["images"], kit[sequence]["images"]):
                assert image.shape == expected.shape and image.dtype == expected.dtype
                scale = 1 if image.dtype == np.uint8 else 255
                assert np.abs(image.astype(np.float64) - expected).max() * scale <= 1 + 1e-9


# ---------------------------------------------------------------- bad input: one sentence naming it
def test_bad_requests_name_what_is_wrong(synthetic_dataset):
    manager = compat.NeRSembleParticipantDataManager(synthetic_dataset, 18)
    cases = [
        (lambda: manager.list_cameras("SEN-07-fond_note_friend"), "SEN-07-fond_note_friend"),  # absent for 18
        (lambda: manager.load_image("EXP-1-head", "222200037", 4), "Timestep 4 is out of range"),
        (lambda: manager.load_image("EXP-1-head", "222200037", -1), "Timestep -1"),
        (lambda: manager.load_image("EXP-1-head", "222200040", 0), "cam_222200040.mp4"),
        (lambda: manager.load_image("../../017/sequences/EXP-1-head", "222200037", 0), "not a valid name"),
        (lambda: manager.load_image("EXP-1-head", "222200037", 0, downscale_factor=0), "downscale_factor 0"),
        (lambda: compat.NeRSembleParticipantDataManager(synthetic_dataset, 99).load_camera_calibration(), "099"),
    ]
    for call, named in cases:
        with pytest.raises(InputDataError) as caught:
            call()
        message = str(caught.value)
        assert named in message and "\n" not in message, message


def test_bad_calibration_files_are_named(synthetic_dataset, tmp_path):
    root = tmp_path / "dataset"
    shutil.copytree(synthetic_dataset / "017/calibration", root / "017/calibration")
    manager = compat.NeRSembleParticipantDataManager(root, 17)
    colour = root / "017/calibration/color_calibration.json"
    colour.write_text(json.dumps({"222200037": [[1, 0], [0, 1], [0, 0]]}))
    with pytest.raises(InputDataError, match=r"color_calibration.json has a colour correction matrix for camera "
                                             r"222200037 that has shape \(3, 2\)"):
        manager.load_color_calibration()
    cameras = root / "017/calibration/camera_params.json"
    document = json.loads(cameras.read_text())
    sheared = json.loads(json.dumps(document))
    sheared["world_2_cam"]["222200038"][0][1] += 0.5  # no longer a rotation
    cameras.write_text(json.dumps(sheared))
    with pytest.raises(InputDataError, match="camera_params.json has an unusable calibration of camera 222200038"):
        manager.load_camera_calibration()
    document["intrinsics"] = {"222200037": document["intrinsics"]}  # the benchmark's per-camera layout
    cameras.write_text(json.dumps(document))
    with pytest.raises(InputDataError, match="camera_params.json has a non-numeric intrinsics"):
        manager.load_camera_calibration()
    cameras.write_text(cameras.read_text()[:50])
    with pytest.raises(InputDataError, match="camera_params.json is not valid JSON"):
        manager.load_camera_calibration()
