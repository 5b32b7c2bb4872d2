"""Pure parts of fetch: request validation, path planning, metadata parsing, safe local paths, retry timing."""

from __future__ import annotations

import email.utils
import json
import time
from pathlib import Path

import pytest
import requests

from nersemble_zarr import catalogue
from nersemble_zarr.errors import CatalogueError, ConfigError, InputDataError
from nersemble_zarr.fetch import RetryPolicy, fetch, human_bytes, make_request
from nersemble_zarr.fetch.download import _retry_after
from nersemble_zarr.fetch.plan import local_path, plan_paths
from nersemble_zarr.sources import Listing, get_source

ServerMetadata = Listing


def parse_metadata(benchmark: str, raw: bytes) -> Listing:
    return get_source(benchmark).listing({catalogue.METADATA_FILE: raw})


ALL_MONO = catalogue.MONO_TRAIN_SEQUENCES + catalogue.MONO_TEST_SEQUENCES
FULL_NVS = ServerMetadata(
    {p: (s,) for p, s in catalogue.NVS_SEQUENCES.items()},
    {p: tuple(range(0, 3 * n, 3)) for p, n in catalogue.NVS_N_FRAMES.items()},
)
FULL_MONO = ServerMetadata({p: ALL_MONO for p in catalogue.MONO_PARTICIPANTS}, {})


def test_request_defaults_follow_the_official_downloader() -> None:
    nvs = make_request("nvs")
    assert nvs.assets == ("calibration", "images", "alpha_maps", "pointclouds")
    assert nvs.participants is None and nvs.pointcloud_frames == (0,)
    mono = make_request("mono_flame_avatar")
    assert "flame2023_tracking" in mono.assets and "flame2023_tracking_v1" not in mono.assets
    assert "flame2023_tracking_v1" in make_request("mono_flame_avatar", assets="all").assets
    assert make_request("nvs", assets=["images", "images"], pointcloud_frames=3).assets == ("images",)
    assert make_request("nvs", pointcloud_frames=3).pointcloud_frames == (3,)
    assert make_request("nvs", participants=[443, 388]).participants == (443, 388)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"assets": []}, CatalogueError, "No assets chosen"),
        ({"assets": "flame2023_tracking"}, CatalogueError, "Unknown asset 'flame2023_tracking' for nvs"),
        ({"participants": ["388"]}, CatalogueError, "Participant id '388' is not an integer"),
        ({"participants": [393]}, CatalogueError, "Unknown participant 393 for benchmark 'nvs'"),
        ({"pointcloud_frames": [-1]}, ConfigError, "Point cloud frame -1"),
        ({"pointcloud_frames": ["first"]}, ConfigError, "Point cloud frame 'first'"),
        ({"pointcloud_frames": True}, ConfigError, "Point cloud frame True"),
    ],
)
def test_bad_requests_are_refused(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        make_request("nvs", **kwargs)


def test_nvs_plan_covers_every_participant_with_frame_zero() -> None:
    paths = plan_paths(make_request("nvs"), FULL_NVS)
    assert len(paths) == 5 * (1 + 2 * 13 + 1) and len(set(paths)) == len(paths)
    assert "475/sequences/HAIR/pointclouds/frame_00000.pcd" in paths
    assert not any("222200046" in p or "222200037" in p or "222200039" in p for p in paths)  # hold-out cameras


def test_point_cloud_frames_are_timestep_labels_as_in_the_official_tool() -> None:
    request = make_request("nvs", participants=[388], assets=["pointclouds"], pointcloud_frames=[0, 6])
    assert plan_paths(request, FULL_NVS) == [
        "388/sequences/GLASSES/pointclouds/frame_00000.pcd", "388/sequences/GLASSES/pointclouds/frame_00006.pcd",
    ]
    everything = plan_paths(make_request("nvs", participants=[475], assets=["pointclouds"], pointcloud_frames="all"),
                            FULL_NVS)
    assert len(everything) == catalogue.NVS_N_FRAMES[475] and everything[-1].endswith("frame_00774.pcd")
    with pytest.raises(CatalogueError, match="frame 1 is not a timestep of participant 475"):
        plan_paths(make_request("nvs", participants=[475], pointcloud_frames=[1]), FULL_NVS)


def test_mono_plan_videos_for_train_sequences_tracking_for_all() -> None:
    paths = plan_paths(make_request("mono_flame_avatar", participants=[404]), FULL_MONO)
    assert len(paths) == 1 + 18 * 2 + 22
    videos = [p for p in paths if p.endswith(".mp4")]
    assert all(p.endswith(f"cam_{catalogue.MONO_TRAIN_SERIAL}.mp4") for p in videos)
    assert not any(f"/{s}/" in p for s in catalogue.MONO_TEST_SEQUENCES for p in videos)
    assert "404/sequences/FREE/tracking/flame2023_tracking_v2.npz" in paths
    with_v1 = plan_paths(make_request("mono_flame_avatar", participants=[404], assets=["flame2023_tracking_v1"]),
                         FULL_MONO)
    assert len(with_v1) == 22 and all(p.endswith("/flame2023_tracking.npz") for p in with_v1)


def test_default_participants_are_those_on_the_server() -> None:
    partial = Listing({393: ("EXP-1-head", "FREE")}, {}, "the server's mono_flame_avatar/metadata.json")
    paths = plan_paths(make_request("mono_flame_avatar"), partial)
    assert paths == [
        "393/calibration/camera_params.json",
        "393/sequences/EXP-1-head/images/cam_222200037.mp4",
        "393/sequences/EXP-1-head/alpha_maps/cam_222200037.mp4",
        "393/sequences/EXP-1-head/tracking/flame2023_tracking_v2.npz",
        "393/sequences/FREE/tracking/flame2023_tracking_v2.npz",
    ]
    with pytest.raises(CatalogueError, match="Participant 404 is not listed in the server's mono_flame_avatar"):
        plan_paths(make_request("mono_flame_avatar", participants=[404]), partial)


def test_metadata_parsing_keeps_only_catalogue_names() -> None:
    nvs = parse_metadata("nvs", json.dumps({"sequences": {
        "388": {"sequence_name": "GLASSES", "timesteps": [2, 5]}, "999": {"sequence_name": "X", "timesteps": []},
    }}).encode())
    assert (nvs.sequences, nvs.timesteps) == ({388: ("GLASSES",)}, {388: (2, 5)})
    mono = parse_metadata("mono_flame_avatar", json.dumps({"participants_metadata": {"393": {"sequences_metadata": {
        "FREE": {"n_frames": 5}, "../../evil": {"n_frames": 1}, "EXP-1-head": {"n_frames": 5},
    }}}}).encode())
    assert mono.sequences == {393: ("EXP-1-head", "FREE")}  # catalogue order; unknown names dropped


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"{not json", "nvs/metadata.json is not valid JSON"),
        (b"{}", "lacks the key 'sequences'"),
        (b'{"sequences": {"388": {"sequence_name": "HAIR", "timesteps": [0]}}}', "sequence 'HAIR', not 'GLASSES'"),
        (b'{"sequences": {"388": {"sequence_name": "GLASSES", "timesteps": [-3]}}}', "not all non-negative"),
        (b'{"sequences": []}', "not in the expected layout"),
    ],
)
def test_malformed_metadata_is_reported(raw, match) -> None:
    with pytest.raises(InputDataError, match=match):
        parse_metadata("nvs", raw)


def test_local_paths_stay_inside_the_benchmark_folder(tmp_path: Path) -> None:
    path = local_path(tmp_path, "nvs", "388/calibration/camera_params.json")
    assert path == (tmp_path / "nvs/388/calibration/camera_params.json").resolve()
    for bad in ("../secrets.txt", "388/../../x", "/etc/passwd", "388//x", "388/.hidden", "a\\..\\b"):
        with pytest.raises(CatalogueError, match="Refusing unsafe relative path"):
            local_path(tmp_path, "nvs", bad)
    with pytest.raises(CatalogueError):
        local_path(tmp_path, "../nvs", "388/x")


def test_retry_waits_double_are_capped_and_honour_retry_after() -> None:
    policy = RetryPolicy(backoff_s=0.5, max_backoff_s=3.0)
    assert [policy.wait(n, None) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert policy.wait(1, 2.5) == 2.5 and policy.wait(1, 100.0) == 3.0
    response = requests.Response()
    response.headers["Retry-After"] = "7"
    assert _retry_after(response) == 7.0
    response.headers["Retry-After"] = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < _retry_after(response) <= 30
    response.headers["Retry-After"] = "soon"
    assert _retry_after(response) is None


def test_bad_workers_and_retry_policies_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="workers=0 is invalid"):
        fetch(tmp_path, "nvs", url="http://127.0.0.1:9/never-contacted", workers=0)
    with pytest.raises(ConfigError, match="attempts must be at least 1"):
        RetryPolicy(attempts=0)


def test_human_bytes() -> None:
    sizes = (0, 1023, 1536, 5 << 20, 3 << 40)
    assert [human_bytes(n) for n in sizes] == ["0 B", "1023 B", "1.5 KiB", "5.0 MiB", "3.0 TiB"]
