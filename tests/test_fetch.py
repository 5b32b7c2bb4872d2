"""fetch() against the real loopback server: completeness, resume, faults, retries, skips, errors, secrecy."""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from pathlib import Path

import pytest

from nersemble_zarr.errors import CatalogueError, DownloadError
from nersemble_zarr.fetch import FetchIncomplete, ProgressEvent, RetryPolicy, fetch
from nersemble_zarr.synthetic import SyntheticConfig, expected_files
from nersemble_zarr.synthetic.server import Faults, serve

NVS, MONO = "nvs", "mono_flame_avatar"
FAST = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=1.0, read_timeout_s=5.0)
PCD = "388/sequences/GLASSES/pointclouds/frame_00000.pcd"  # the first frame's point cloud (timestep 0)
VIDEO = "388/sequences/GLASSES/images/cam_222200042.mp4"


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def default_files(config: SyntheticConfig) -> set[str]:
    """What the official defaults fetch: no point clouds but the first frame's, no older tracking file."""
    return {
        f for f in expected_files(config)
        if not (f.endswith(".pcd") and not f.endswith(PCD)) and not f.endswith("/flame2023_tracking.npz")
    }


@pytest.fixture
def source(synthetic_root: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic benchmark, safe to change."""
    return Path(shutil.copytree(synthetic_root, tmp_path / "server"))


def assert_same_bytes(fetched: Path, source: Path, relative_paths: set[str]) -> None:
    for relative in relative_paths:
        assert (fetched / relative).read_bytes() == (source / relative).read_bytes(), relative


def test_full_fetch_of_both_benchmarks_equals_the_source(synthetic_root, synthetic_config, tmp_path) -> None:
    events: list[ProgressEvent] = []
    with serve(synthetic_root) as server:
        nvs = fetch(tmp_path, NVS, url=server.url, workers=4, progress=events.append)
        mono = fetch(tmp_path, MONO, url=server.url, workers=2)
    expected = default_files(synthetic_config)
    assert files_under(tmp_path) == expected
    assert_same_bytes(tmp_path, synthetic_root, expected)
    assert nvs.downloaded == len(nvs.files) == 29 and nvs.skipped == 0 and not nvs.failed
    assert mono.downloaded == len(mono.files) == 6  # metadata, calibration, 2 videos, 2 tracking files
    assert nvs.bytes_downloaded == sum((tmp_path / NVS / f.path).stat().st_size for f in nvs.files)
    planned = sum(e.nbytes for e in events if e.kind == "plan")
    received = sum(e.nbytes for e in events if e.kind == "bytes")
    assert planned == received == nvs.bytes_downloaded
    assert sum(e.kind == "file" and e.outcome == "downloaded" for e in events) == 28


def test_all_assets_and_all_point_cloud_frames(synthetic_root, synthetic_config, tmp_path) -> None:
    with serve(synthetic_root) as server:
        fetch(tmp_path, NVS, url=server.url, pointcloud_frames="all")
        fetch(tmp_path, MONO, url=server.url, assets="all", participants=[393])
    assert files_under(tmp_path) == set(expected_files(synthetic_config))
    assert_same_bytes(tmp_path, synthetic_root, set(expected_files(synthetic_config)))


def test_second_run_skips_everything_with_head_requests_only(synthetic_root, tmp_path) -> None:
    with serve(synthetic_root) as server:
        fetch(tmp_path, NVS, url=server.url)
        before = {p: p.stat().st_mtime_ns for p in (tmp_path / NVS).rglob("*")}
        server.clear_log()
        again = fetch(tmp_path, NVS, url=server.url)
        assert {r.method for r in server.requests} == {"HEAD"}
        assert again.downloaded == 0 and again.skipped == len(again.files) == 29 and again.bytes_downloaded == 0
        assert {p: p.stat().st_mtime_ns for p in (tmp_path / NVS).rglob("*")} == before
        server.clear_log()
        redone = fetch(tmp_path, NVS, url=server.url, overwrite=True)
        assert redone.downloaded == 29 and sum(r.method == "GET" for r in server.requests) == 29


def test_dropped_connection_resumes_with_only_the_missing_bytes(synthetic_root, tmp_path) -> None:
    size = (synthetic_root / NVS / PCD).stat().st_size
    with serve(synthetic_root, Faults(drop_after_bytes=30_000, paths=(f"{NVS}/{PCD}",))) as server:
        summary = fetch(tmp_path, NVS, url=server.url, retry=FAST)
        gets = [r for r in server.requests if r.method == "GET" and r.path == f"{NVS}/{PCD}"]
    assert [(r.range, r.status, r.bytes_sent) for r in gets] == [
        (None, 200, 30_000), ("bytes=30000-", 206, size - 30_000)
    ]
    assert (tmp_path / NVS / PCD).read_bytes() == (synthetic_root / NVS / PCD).read_bytes()
    assert not list(tmp_path.rglob("*.part")) and not summary.failed


def test_interrupted_run_leaves_a_part_file_that_the_next_run_continues(synthetic_root, tmp_path) -> None:
    target = tmp_path / NVS / PCD
    size = (synthetic_root / NVS / PCD).stat().st_size
    with serve(synthetic_root, Faults(drop_after_bytes=20_000, paths=(f"{NVS}/{PCD}",))) as server:
        with pytest.raises(FetchIncomplete) as caught:
            fetch(tmp_path, NVS, url=server.url, retry=RetryPolicy(attempts=1))
        assert [f.path for f in caught.value.summary.failed] == [PCD]
        assert not target.exists()
        assert target.with_name(target.name + ".part").stat().st_size == 20_000
        server.faults = Faults()
        server.clear_log()
        summary = fetch(tmp_path, NVS, url=server.url)
        gets = [r for r in server.requests if r.method == "GET"]
    assert [(r.path, r.range, r.bytes_sent) for r in gets] == [(f"{NVS}/{PCD}", "bytes=20000-", size - 20_000)]
    assert summary.downloaded == 1 and summary.skipped == 28 and summary.bytes_downloaded == size - 20_000
    assert target.read_bytes() == (synthetic_root / NVS / PCD).read_bytes()
    assert not target.with_name(target.name + ".part").exists()


def test_server_ignoring_range_restarts_from_zero(synthetic_root, tmp_path) -> None:
    target = tmp_path / NVS / PCD
    target.parent.mkdir(parents=True)
    original = (synthetic_root / NVS / PCD).read_bytes()
    target.with_name(target.name + ".part").write_bytes(original[:10_000])
    events: list[ProgressEvent] = []
    with serve(synthetic_root, Faults(ignore_range=True)) as server:
        fetch(tmp_path, NVS, url=server.url, progress=events.append)
        gets = [r for r in server.requests if r.path == f"{NVS}/{PCD}" and r.method == "GET"]
    assert [(r.range, r.status, r.bytes_sent) for r in gets] == [("bytes=10000-", 200, len(original))]
    assert target.read_bytes() == original
    # the bar's total first counted the resumed 10 000 bytes as kept, then grew by them when they were discarded
    assert sum(e.nbytes for e in events if e.kind == "plan") == sum(e.nbytes for e in events if e.kind == "bytes")


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_errors_are_retried_then_succeed(synthetic_root, tmp_path, status) -> None:
    faults = Faults(error_status=status, error_requests=2, error_methods=("GET",), paths=(f"{NVS}/{VIDEO}",))
    with serve(synthetic_root, faults) as server:
        summary = fetch(tmp_path, NVS, url=server.url, retry=FAST)
        statuses = [r.status for r in server.requests if r.path == f"{NVS}/{VIDEO}" and r.method == "GET"]
    assert statuses == [status, status, 200] and not summary.failed
    assert (tmp_path / NVS / VIDEO).read_bytes() == (synthetic_root / NVS / VIDEO).read_bytes()


def test_retry_after_is_honoured(synthetic_root, tmp_path) -> None:
    faults = Faults(error_status=429, error_requests=1, retry_after=0.6, paths=(f"{NVS}/{VIDEO}",))
    with serve(synthetic_root, faults) as server:
        started = time.perf_counter()
        fetch(tmp_path, NVS, url=server.url, retry=FAST, participants=[388], assets=["images"])
        elapsed = time.perf_counter() - started
        head_statuses = [r.status for r in server.requests if r.path == f"{NVS}/{VIDEO}" and r.method == "HEAD"]
    assert head_statuses == [429, 200] and elapsed >= 0.6


def test_persistent_server_errors_give_up_after_the_bounded_attempts(synthetic_root, tmp_path) -> None:
    faults = Faults(error_status=503, error_requests=100, error_methods=("GET",), paths=(f"{NVS}/{VIDEO}",))
    with serve(synthetic_root, faults) as server:
        with pytest.raises(FetchIncomplete, match=r"HTTP 503.*gave up after 3 attempts") as caught:
            fetch(tmp_path, NVS, url=server.url, retry=FAST)
        gets = [r for r in server.requests if r.path == f"{NVS}/{VIDEO}" and r.method == "GET"]
    assert len(gets) == 3
    summary = caught.value.summary
    assert summary.downloaded == 28 and [f.path for f in summary.failed] == [VIDEO]
    assert not (tmp_path / NVS / VIDEO).exists()


def test_retry_messages_count_attempts_in_words(synthetic_root, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="nersemble_zarr")
    faults = Faults(error_status=503, error_requests=100, error_methods=("GET",), paths=(f"{NVS}/{VIDEO}",))
    with serve(synthetic_root, faults) as server:
        with pytest.raises(FetchIncomplete, match=r"gave up after 2 attempts"):
            fetch(tmp_path, NVS, url=server.url, retry=RetryPolicy(attempts=2, backoff_s=0.01, read_timeout_s=5.0), participants=[388],
                  assets=["images"])
    assert "(1 attempt left)" in caplog.text and "attempts left" not in caplog.text


def test_missing_file_fails_at_once_and_names_the_relative_path(source, tmp_path) -> None:
    (source / NVS / VIDEO).unlink()
    out = tmp_path / "out"
    with serve(source) as server:
        with pytest.raises(FetchIncomplete) as caught:
            fetch(out, NVS, url=server.url, retry=FAST)
        tries = [r for r in server.requests if r.path == f"{NVS}/{VIDEO}"]
    message = str(caught.value)
    assert f"nvs/{VIDEO}" in message and "HTTP 404" in message and "1 of 29" in message
    assert server.token not in message and "127.0.0.1" not in message
    assert [(r.method, r.status) for r in tries] == [("HEAD", 404)]  # never retried
    assert len(files_under(out)) == 28


def test_wrong_secret_is_refused_without_retries(synthetic_root, tmp_path) -> None:
    with serve(synthetic_root) as server:
        wrong = server.url.rsplit("/", 1)[0] + "/not-the-secret"
        with pytest.raises(DownloadError, match=r"nvs/metadata.json.*HTTP 403.*access URL") as caught:
            fetch(tmp_path, NVS, url=wrong, retry=FAST)
        assert len(server.requests) == 1
    assert "not-the-secret" not in "".join(traceback.format_exception(caught.value))
    assert not (tmp_path / NVS).exists()


def test_truncated_body_is_detected_and_never_becomes_the_final_file(synthetic_root, tmp_path) -> None:
    with serve(synthetic_root, Faults(short_body_bytes=100, paths=(f"{NVS}/{PCD}",))) as server:
        with pytest.raises(FetchIncomplete, match="frame_00000.pcd") as caught:
            fetch(tmp_path, NVS, url=server.url, retry=FAST)
        gets = [r for r in server.requests if r.path == f"{NVS}/{PCD}" and r.method == "GET"]
    assert len(gets) == 3 and not (tmp_path / NVS / PCD).exists()
    assert "broke mid-body" in caught.value.summary.failed[0].error


def test_timeouts_are_retried_and_reported(synthetic_root, tmp_path) -> None:
    policy = RetryPolicy(attempts=2, backoff_s=0.01, read_timeout_s=0.2)
    with serve(synthetic_root, Faults(delay_s=0.5, paths=(f"{NVS}/metadata.json",))) as server:
        with pytest.raises(DownloadError, match="did not answer in time.*gave up after 2 attempts"):
            fetch(tmp_path, NVS, url=server.url, retry=policy)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"source": "nersemble"}, "Unknown benchmark or dataset 'nersemble'"),
        ({"participants": [999]}, "Unknown participant 999"),
        ({"assets": ["images", "depth_maps"]}, "Unknown asset 'depth_maps'"),
        ({"source": MONO, "assets": ["pointclouds"]}, "Unknown asset 'pointclouds'"),
    ],
)
def test_unknown_names_are_rejected_before_any_request(synthetic_root, tmp_path, kwargs, match) -> None:
    kwargs = {"source": NVS, **kwargs}
    with serve(synthetic_root) as server:
        with pytest.raises(CatalogueError, match=match):
            fetch(tmp_path, kwargs.pop("source"), url=server.url, **kwargs)
        assert server.requests == []
    assert list(tmp_path.iterdir()) == []


def test_frames_and_participants_beyond_the_server_metadata_are_rejected(synthetic_root, tmp_path) -> None:
    with serve(synthetic_root) as server:
        with pytest.raises(CatalogueError, match="frame 7 is not a timestep of participant 388.*run 0, 3"):
            fetch(tmp_path, NVS, url=server.url, pointcloud_frames=[0, 7])
        with pytest.raises(CatalogueError, match="Participant 422 is not listed"):
            fetch(tmp_path, NVS, url=server.url, participants=[422])
        assert {r.path for r in server.requests} == {"nvs/metadata.json"}


def test_dry_run_lists_sizes_and_writes_nothing(synthetic_root, tmp_path) -> None:
    out = tmp_path / "out"
    with serve(synthetic_root) as server:
        summary = fetch(out, NVS, url=server.url, dry_run=True, pointcloud_frames=[3, 6])
        methods = {(r.method, r.path.endswith("metadata.json")) for r in server.requests}
    assert not out.exists()
    assert methods == {("HEAD", True), ("GET", True), ("HEAD", False)}
    sizes = {f.path: f.size for f in summary.files}
    assert sizes["388/sequences/GLASSES/pointclouds/frame_00003.pcd"] == (
        synthetic_root / NVS / "388/sequences/GLASSES/pointclouds/frame_00003.pcd"
    ).stat().st_size
    assert "388/sequences/GLASSES/pointclouds/frame_00000.pcd" not in sizes
    assert summary.bytes_total == sum(sizes.values()) and summary.downloaded == 0
    assert "30 files" in summary.line()


def test_interrupt_stops_workers_and_keeps_part_files(synthetic_root, tmp_path) -> None:
    received = []

    def interrupt_mid_file(event: ProgressEvent) -> None:  # like Ctrl-C once 20 kB of point clouds came in
        received.append(event.nbytes if event.kind == "bytes" else 0)
        if sum(received) > 20_000:
            raise KeyboardInterrupt

    total = sum(path.stat().st_size for path in (synthetic_root / NVS).rglob("*.pcd"))
    with serve(synthetic_root, Faults(bytes_per_second=100_000, paths=("*.pcd",))) as server:
        with pytest.raises(KeyboardInterrupt):
            fetch(tmp_path, NVS, url=server.url, assets=["pointclouds"], pointcloud_frames="all",
                  workers=2, progress=interrupt_mid_file)
        assert not list((tmp_path / NVS).rglob("*.pcd"))
        kept = sum(part.stat().st_size for part in (tmp_path / NVS).rglob("*.pcd.part"))
        assert 0 < kept < total / 2  # fetch returned after its workers stopped mid-file, far from all six files
        server.faults = Faults()
        fetch(tmp_path, NVS, url=server.url, assets=["pointclouds"], pointcloud_frames="all")
    assert len(list((tmp_path / NVS).rglob("*.pcd"))) == 6 and not list(tmp_path.rglob("*.part"))


def test_the_secret_never_reaches_logs_or_exceptions(source, tmp_path, caplog) -> None:
    (source / NVS / VIDEO).unlink()
    caplog.set_level(logging.DEBUG)
    with serve(source, Faults(drop_after_bytes=1000, paths=("*.pcd",))) as server:
        with pytest.raises(FetchIncomplete) as caught:
            fetch(tmp_path / "out", NVS, url=server.url, retry=FAST)
    secret = server.token
    assert "retrying" in caplog.text and "GET" in caplog.text  # urllib3's request lines were logged, redacted
    assert secret not in caplog.text
    rendered = "".join(traceback.format_exception(caught.value))
    assert secret not in rendered and f"nvs/{VIDEO}" in rendered


@pytest.mark.parametrize(
    "part, overwrite, expected_get",
    [
        ("complete", False, ("bytes={size}-", 416)),  # the .part already holds every byte: just renamed
        ("garbage-longer", False, (None, 200)),  # longer than the remote file: cannot be a prefix, start over
        ("prefix", True, (None, 200)),  # --overwrite never trusts a .part
    ],
)
def test_part_file_states(synthetic_root, tmp_path, part, overwrite, expected_get) -> None:
    original = (synthetic_root / NVS / PCD).read_bytes()
    target = tmp_path / NVS / PCD
    target.parent.mkdir(parents=True)
    content = {"complete": original, "garbage-longer": b"x" * (len(original) + 5), "prefix": b"y" * 1000}[part]
    target.with_name(target.name + ".part").write_bytes(content)
    with serve(synthetic_root) as server:
        fetch(tmp_path, NVS, url=server.url, assets=["pointclouds"], overwrite=overwrite)
        gets = [(r.range, r.status) for r in server.requests if r.method == "GET" and r.path.endswith(".pcd")]
    assert gets == [(expected_get[0] and expected_get[0].format(size=len(original)), expected_get[1])]
    assert target.read_bytes() == original and not target.with_name(target.name + ".part").exists()


def test_dry_run_with_overwrite_keeps_part_files(synthetic_root, tmp_path) -> None:
    part = tmp_path / NVS / (PCD + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"z" * 100)
    with serve(synthetic_root) as server:
        summary = fetch(tmp_path, NVS, url=server.url, assets=["pointclouds"], overwrite=True, dry_run=True)
    assert part.read_bytes() == b"z" * 100 and files_under(tmp_path) == {f"{NVS}/{PCD}.part"}
    assert [f.action for f in summary.files] == ["download", "download"]
