"""fetch against a hostile or broken server and a booby-trapped ROOT (issue 11's fetch cases).

- Server text (reason phrases, redirects) is untrusted: the access URL's secret and terminal escape
  sequences never reach the Error line, a --debug traceback, FetchIncomplete / FileDownloadError.reason or logs.
- A ``.part`` or final name that is a symlink or hard link is never written through.
- A web page answered with 200, a gzip Content-Encoding, a body past the announced size, or a body without
  Content-Length that was cut short never lands under a final name, nor replaces a complete file.
- A redirect to an unusable host name fails that one file, not the run.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner

from nersemble_zarr.cli.main import main
from nersemble_zarr.errors import InputDataError
from nersemble_zarr.fetch import FetchIncomplete, ProgressEvent, RetryPolicy, fetch
from nersemble_zarr.fetch.download import FileDownloadError
from nersemble_zarr.synthetic.server import Faults, serve

NVS, MONO = "nvs", "mono_flame_avatar"
FAST = RetryPolicy(attempts=2, backoff_s=0.01, max_backoff_s=0.05, read_timeout_s=5.0)
PCD = "388/sequences/GLASSES/pointclouds/frame_00000.pcd"
VIDEO = "388/sequences/GLASSES/images/cam_222200042.mp4"
CALIBRATION = "388/calibration/camera_params.json"
TRACKING = "393/sequences/FREE/tracking/flame2023_tracking_v2.npz"
ESCAPES = " \x1b]0;pwned\x07\x1b[2J\x1b[1;32mAll files verified OK\x1b[0m\x9b2J"
HOSTILE_REASON = ": {path}" + ESCAPES  # a server echoing the request path, with OSC and CSI sequences


@pytest.fixture
def source(synthetic_root: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic benchmark, safe to change."""
    return Path(shutil.copytree(synthetic_root, tmp_path / "server"))


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Content and mtime of every file below ``folder``."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def assert_clean_text(text: str, secret: str) -> None:
    """No secret, no address, no control character but newlines."""
    assert secret not in text and "127.0.0.1" not in text
    controls = {ch for ch in text if (ord(ch) < 32 and ch != "\n") or 0x7F <= ord(ch) < 0xA0}
    assert not controls, f"control characters {controls!r} in {text!r}"


# ------------------------------------------------------------------------------------------------ server text
def test_a_reason_phrase_with_the_secret_and_escapes_is_cleaned_everywhere(source, tmp_path, caplog) -> None:
    (source / NVS / VIDEO).unlink()  # 404, with the request path in the reason
    faults = Faults(reason_suffix=HOSTILE_REASON, error_status=503, error_requests=100, error_methods=("GET",),
                    paths=(f"{NVS}/{VIDEO}", f"{NVS}/{PCD}"))  # and a 503 that is retried (and logged)
    caplog.set_level(logging.DEBUG)
    with serve(source, faults) as server:
        with pytest.raises(FetchIncomplete) as caught:
            fetch(tmp_path / "out", NVS, url=server.url, retry=FAST)
    failed = {entry.path: entry.error for entry in caught.value.summary.failed}
    assert set(failed) == {VIDEO, PCD}
    assert failed[VIDEO].startswith("the server answered HTTP 404 Not Found: /<access URL>/nvs/")
    assert "HTTP 503" in failed[PCD] and "gave up after 2 attempts" in failed[PCD]
    for text in (str(caught.value), "".join(traceback.format_exception(caught.value)), caplog.text, *failed.values()):
        assert_clean_text(text, server.token)
    assert "retrying" in caplog.text


def test_a_failing_metadata_request_has_a_clean_reason(source, tmp_path) -> None:
    (source / NVS / "metadata.json").unlink()
    with serve(source, Faults(reason_suffix=HOSTILE_REASON)) as server:
        with pytest.raises(FileDownloadError) as caught:
            fetch(tmp_path, NVS, url=server.url, retry=FAST)
    assert "HTTP 404" in caught.value.reason
    for text in (caught.value.reason, str(caught.value), "".join(traceback.format_exception(caught.value))):
        assert_clean_text(text, server.token)


def test_the_secret_quoted_back_in_metadata_json_is_redacted(source, tmp_path) -> None:
    """metadata.json is server text too: an error quoting it must not carry the secret or escapes."""
    with serve(source) as server:
        document = {"sequences": {"388": {"sequence_name": f"/{server.token}/x{ESCAPES}", "timesteps": [0]}}}
        (source / NVS / "metadata.json").write_text(json.dumps(document))
        with pytest.raises(InputDataError, match="not in the expected layout") as caught:
            fetch(tmp_path, NVS, url=server.url, retry=FAST)
    assert_clean_text(str(caught.value), server.token)


@pytest.mark.parametrize("debug", [False, True])
def test_the_cli_shows_no_server_text_raw(source, tmp_path, debug) -> None:
    (source / NVS / VIDEO).unlink()
    env = {k: v for k, v in os.environ.items() if k != "NERSEMBLE_BENCHMARK_URL"}
    with serve(source, Faults(reason_suffix=HOSTILE_REASON)) as server:
        env["NERSEMBLE_BENCHMARK_URL"] = server.url
        done = subprocess.run([sys.executable, "-m", "nersemble_zarr.cli", "fetch", str(tmp_path / "out"), NVS,
                               "-vv", *(["--debug"] if debug else [])],
                              env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert ("Traceback" in done.stderr) == debug
    assert f"nvs/{VIDEO} (the server answered HTTP 404 Not Found: /<access URL>/" in done.stderr
    for output in (done.stdout, done.stderr):
        assert_clean_text(output.replace("\r", ""), server.token)  # tqdm redraws its bar with \r


def test_a_redirect_to_an_unusable_host_fails_that_file_only(synthetic_root, tmp_path) -> None:
    location = "http://" + "a" * 64 + ".invalid{path}"
    with serve(synthetic_root, Faults(redirect_to=location, paths=(f"{NVS}/{PCD}",))) as server:
        with pytest.raises(FetchIncomplete) as caught:
            fetch(tmp_path, NVS, url=server.url, retry=FAST)
    summary = caught.value.summary
    assert [entry.path for entry in summary.failed] == [PCD] and summary.downloaded == 28
    assert "redirect" in summary.failed[0].error and "\n" not in str(caught.value)
    assert_clean_text(str(caught.value), server.token)


# ------------------------------------------------------------------------------------------------ links
@pytest.mark.parametrize("relative, link", [(CALIBRATION, "symlink"), ("metadata.json", "hardlink"),
                                            (PCD, "symlink"), (VIDEO, "hardlink")])
def test_a_linked_part_file_is_never_written_through(synthetic_root, tmp_path, relative, link) -> None:
    original = (synthetic_root / NVS / relative).read_bytes()
    outside = tmp_path / "outside" / "precious"
    outside.parent.mkdir()
    outside.write_bytes(original[: len(original) // 2])  # a prefix: a Range resume would append to it
    before = outside.read_bytes()
    root = tmp_path / "root"
    part = root / NVS / f"{relative}.part"
    part.parent.mkdir(parents=True)
    (part.symlink_to if link == "symlink" else part.hardlink_to)(outside)
    with serve(synthetic_root) as server:
        fetch(root, NVS, url=server.url, retry=FAST)
    assert outside.read_bytes() == before
    final = root / NVS / relative
    assert not final.is_symlink() and final.stat().st_nlink == 1 and final.read_bytes() == original
    assert not part.exists() and not part.is_symlink()


def test_a_part_name_taken_by_a_folder_fails_that_file_in_one_line(synthetic_root, tmp_path) -> None:
    (tmp_path / NVS / f"{PCD}.part").mkdir(parents=True)
    with serve(synthetic_root) as server:
        with pytest.raises(FetchIncomplete) as caught:
            fetch(tmp_path, NVS, url=server.url, retry=FAST)
    assert [entry.path for entry in caught.value.summary.failed] == [PCD]
    assert "frame_00000.pcd.part failed" in str(caught.value) and (tmp_path / NVS / f"{PCD}.part").is_dir()


@pytest.mark.parametrize("complete", [True, False])
def test_a_final_name_that_is_a_symlink_is_replaced_not_followed(synthetic_root, tmp_path, complete) -> None:
    original = (synthetic_root / NVS / PCD).read_bytes()
    outside = tmp_path / "outside.pcd"
    outside.write_bytes(original if complete else b"user data")
    root = tmp_path / "root"
    final = root / NVS / PCD
    final.parent.mkdir(parents=True)
    final.symlink_to(outside)
    with serve(synthetic_root) as server:
        fetch(root, NVS, url=server.url, retry=FAST)
    assert outside.read_bytes() == (original if complete else b"user data")
    assert not final.is_symlink() and final.read_bytes() == original


def test_a_symlink_between_two_final_names_does_not_swap_their_files(synthetic_root, tmp_path) -> None:
    """``cam_A.mp4 -> cam_B.mp4`` inside ROOT: fetching A must not overwrite B."""
    root = tmp_path / "root"
    other = VIDEO.replace("222200042", "222200044")
    a, b = root / NVS / VIDEO, root / NVS / other
    a.parent.mkdir(parents=True)
    a.symlink_to(b.name)
    with serve(synthetic_root) as server:
        fetch(root, NVS, url=server.url, retry=FAST)
    assert not a.is_symlink()
    assert a.read_bytes() == (synthetic_root / NVS / VIDEO).read_bytes()
    assert b.read_bytes() == (synthetic_root / NVS / other).read_bytes()


# ------------------------------------------------------------------------------------------------ bodies that are not the file
@pytest.mark.parametrize("page_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_a_web_page_never_replaces_complete_files(synthetic_root, tmp_path, page_type) -> None:
    with serve(synthetic_root) as server:
        fetch(tmp_path, NVS, url=server.url)
        before = snapshot(tmp_path)
        server.faults = Faults(web_page=True, web_page_type=page_type, paths=("nvs/388/*",))
        with pytest.raises(FetchIncomplete) as caught:
            fetch(tmp_path, NVS, url=server.url, retry=FAST)
        result = CliRunner().invoke(main, ["fetch", str(tmp_path), NVS, "--url", server.url])
    assert snapshot(tmp_path) == before
    summary = caught.value.summary
    assert len(summary.failed) == 28 and summary.downloaded == 0
    assert all("web page" in entry.error for entry in summary.failed), summary.failed[0].error
    assert result.exit_code == 1 and result.output.count("Error:") == 1 and "web page" in result.output


def test_a_web_page_never_lands_as_a_new_file_either(synthetic_root, tmp_path) -> None:
    with serve(synthetic_root, Faults(web_page=True, web_page_type="application/octet-stream",
                                      paths=(f"{NVS}/{CALIBRATION}",))) as server:
        with pytest.raises(FetchIncomplete, match="web page"):
            fetch(tmp_path, NVS, url=server.url, retry=FAST)
    assert not (tmp_path / NVS / CALIBRATION).exists()
    assert not (tmp_path / NVS / f"{CALIBRATION}.part").exists()


def test_a_gzip_encoded_body_is_refused_and_a_saved_one_is_not_taken_as_complete(synthetic_root, tmp_path) -> None:
    with serve(synthetic_root, Faults(content_encoding="gzip", paths=("nvs/388/*",))) as server:
        with pytest.raises(FetchIncomplete) as caught:
            fetch(tmp_path, NVS, url=server.url, retry=FAST)
        assert all("Content-Encoding: gzip" in entry.error for entry in caught.value.summary.failed)
        assert not [p for p in (tmp_path / NVS / "388").rglob("*") if p.is_file()]
        # what an older version saved: the compressed body, of exactly the size the HEAD announces
        saved = tmp_path / NVS / CALIBRATION
        saved.parent.mkdir(parents=True)
        saved.write_bytes(gzip.compress((synthetic_root / NVS / CALIBRATION).read_bytes(), mtime=0))
        with pytest.raises(FetchIncomplete) as again:
            fetch(tmp_path, NVS, url=server.url, retry=FAST)
        assert CALIBRATION in [entry.path for entry in again.value.summary.failed]  # not "already complete"
        server.faults = Faults()
        fetch(tmp_path, NVS, url=server.url, retry=FAST)
    assert saved.read_bytes() == (synthetic_root / NVS / CALIBRATION).read_bytes()


def test_reading_stops_at_the_announced_size(synthetic_root, tmp_path) -> None:
    size = (synthetic_root / NVS / PCD).stat().st_size
    metadata = (synthetic_root / NVS / "metadata.json").stat().st_size
    events: list[ProgressEvent] = []
    with serve(synthetic_root, Faults(overlong_bytes=16 << 20, paths=(f"{NVS}/{PCD}",))) as server:
        with pytest.raises(FetchIncomplete, match="more than") as caught:
            fetch(tmp_path, NVS, url=server.url, retry=FAST, assets=["pointclouds"], progress=events.append)
        received = sum(e.nbytes for e in events if e.kind == "bytes") - metadata
        assert received <= FAST.attempts * size  # nothing past the announced size is kept, per attempt
        assert [entry.path for entry in caught.value.summary.failed] == [PCD]
        assert not (tmp_path / NVS / PCD).exists()
        part = tmp_path / NVS / f"{PCD}.part"
        assert not part.exists() or part.stat().st_size <= size
        server.faults = Faults()
        fetch(tmp_path, NVS, url=server.url, retry=FAST, assets=["pointclouds"])
    assert (tmp_path / NVS / PCD).read_bytes() == (synthetic_root / NVS / PCD).read_bytes()


@pytest.mark.parametrize("benchmark, relative", [(NVS, "metadata.json"), (NVS, CALIBRATION), (NVS, VIDEO),
                                                 (NVS, PCD), (MONO, TRACKING)])
def test_a_body_without_length_cut_short_never_lands_and_is_retried(synthetic_root, tmp_path, benchmark,
                                                                    relative) -> None:
    size = (synthetic_root / benchmark / relative).stat().st_size
    cut = Faults(no_content_length=True, drop_after_bytes=size // 2, paths=(f"{benchmark}/{relative}",))
    with serve(synthetic_root, cut) as server:
        fetch(tmp_path / "once", benchmark, url=server.url, retry=FAST)  # the first GET is cut, the retry completes
        server.faults = Faults(no_content_length=True, drop_after_bytes=size // 2, drop_requests=None,
                               paths=(f"{benchmark}/{relative}",))
        with pytest.raises((FetchIncomplete, FileDownloadError)) as caught:
            fetch(tmp_path / "always", benchmark, url=server.url, retry=FAST)
    assert (tmp_path / "once" / benchmark / relative).read_bytes() == (synthetic_root / benchmark / relative).read_bytes()
    assert not (tmp_path / "always" / benchmark / relative).exists()
    assert relative in str(caught.value) and "gave up after 2 attempts" in str(caught.value)
