"""fetch's resource limits and the access URL's ways in (issue 22, cases 13 to 16), against the real loopback server.

- Size ceilings: a small file kind (JSON, npz, ...) announced beyond its ceiling fails before any body is read;
  one sent without a length stops at the ceiling, in a dry run (memory) and a normal run (no .part beyond it).
- Stall rule: a server dripping bytes fails the attempt after one window; the retry resumes, then gives up.
- Strict headers: a Content-Length or Content-Range that is not ASCII digits of a bounded length is a malformed
  answer (retried, then one failed file), never a traceback; the loopback server parses Range the same way.
- The URL comes from ``--url-file PATH`` or ``--url-file -`` (standard input) without appearing in argv or any
  output; a .env or URL file that other users can write, or that another user owns, is refused.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from crash_campaign import cli_command
from nersemble_zarr.cli.main import main
from nersemble_zarr.fetch import FetchIncomplete, RetryPolicy, fetch
from nersemble_zarr.inputs.jsontext import MAX_JSON_BYTES
from nersemble_zarr.fetch.download import FileDownloadError
from nersemble_zarr.synthetic.server import Faults, serve

NVS, MONO = "nvs", "mono_flame_avatar"
METADATA = "metadata.json"
PCD = "388/sequences/GLASSES/pointclouds/frame_00000.pcd"
TRACKING = "393/sequences/FREE/tracking/flame2023_tracking_v2.npz"
FAST = RetryPolicy(attempts=2, backoff_s=0.01, max_backoff_s=0.05, read_timeout_s=5.0)
JSON_CEILING, NPZ_CEILING = MAX_JSON_BYTES, 256 << 20  # as docs/fetch.md states


def get_bytes(server, path: str) -> list[int]:
    """Body bytes the server sent for each GET of ``path`` (relative to the served folder)."""
    return [r.bytes_sent for r in server.requests if r.method == "GET" and r.path == path]


# ---------------------------------------------------------------- 13: size ceilings
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_json_announced_beyond_its_ceiling_fails_before_its_body(synthetic_root, tmp_path, dry_run):
    huge = Faults(header_values=(("Content-Length", str(10**12)),), paths=(f"{NVS}/{METADATA}",))
    with serve(synthetic_root, huge) as server:
        with pytest.raises(FileDownloadError, match=f"announced {10**12} bytes, more than the {JSON_CEILING} bytes "
                                                    "a .json file may have"):
            fetch(tmp_path, NVS, url=server.url, retry=FAST, dry_run=dry_run)
        assert get_bytes(server, f"{NVS}/{METADATA}") == []  # refused on the HEAD: no body was asked for
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no metadata.json, no .part


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_json_without_length_stops_at_its_ceiling(synthetic_root, tmp_path, dry_run):
    endless = Faults(no_content_length=True, overlong_bytes=100 << 20, paths=(f"{NVS}/{METADATA}",))
    with serve(synthetic_root, endless) as server:
        with pytest.raises(FileDownloadError, match=f"sent more than the {JSON_CEILING} bytes a .json file may have"):
            fetch(tmp_path, NVS, url=server.url, retry=FAST, dry_run=dry_run)
        sent = get_bytes(server, f"{NVS}/{METADATA}")
    assert len(sent) == 1 and sent[0] < 40 << 20  # one attempt (a ceiling is final), cut near 16 MiB, not 100
    left = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert left == [], left  # no metadata.json, no .part


def test_an_npz_announced_beyond_its_ceiling_fails_that_file_only(synthetic_root, tmp_path):
    huge = Faults(header_values=(("Content-Length", str(NPZ_CEILING + 1)),), paths=(f"{MONO}/{TRACKING}",))
    with serve(synthetic_root, huge) as server:
        with pytest.raises(FetchIncomplete) as caught:
            fetch(tmp_path, MONO, url=server.url, retry=FAST, participants=[393])
    failed = caught.value.summary.failed
    assert [entry.path for entry in failed] == [TRACKING]
    assert "a .npz file may have" in failed[0].error
    assert caught.value.summary.downloaded > 0 and not (tmp_path / MONO / f"{TRACKING}.part").exists()


# ---------------------------------------------------------------- 14: stall rule
def test_a_dripping_server_fails_the_attempt_after_one_window_and_the_rerun_resumes(synthetic_root, tmp_path):
    drip = Faults(bytes_per_second=8, paths=(f"{NVS}/{METADATA}",))  # one byte every 0.125 s
    policy = RetryPolicy(attempts=2, backoff_s=0.01, read_timeout_s=5.0, stall_window_s=0.5, stall_min_bytes=64)
    started = time.monotonic()
    with serve(synthetic_root, drip) as server:
        with pytest.raises(FileDownloadError, match=r"stalled .* fewer than the 64 fetch requires.*gave up after 2"):
            fetch(tmp_path, NVS, url=server.url, retry=policy)
        elapsed = time.monotonic() - started
        part = tmp_path / NVS / f"{METADATA}.part"
        original = (synthetic_root / NVS / METADATA).read_bytes()
        assert 0 < part.stat().st_size < len(original) and original.startswith(part.read_bytes())
        ranges = [r.range for r in server.requests if r.method == "GET"]
        assert ranges[0] is None and ranges[1].startswith("bytes=")  # the retry resumed what the stall had kept
        server.faults = Faults()
        fetch(tmp_path, NVS, url=server.url, retry=FAST, assets=["calibration"])
    assert elapsed < 10  # two windows and a backoff, where the drip alone would take 22 s
    assert (tmp_path / NVS / METADATA).read_bytes() == original


def test_a_stall_window_must_be_positive():
    with pytest.raises(Exception, match="stall window must be positive"):
        RetryPolicy(stall_window_s=0)


# ---------------------------------------------------------------- 16: strict headers
@pytest.mark.parametrize("value", ["\u00b2", "1" * 5000, "12abc", "-5", "0x10"])
def test_a_malformed_content_length_is_one_failed_file_not_a_traceback(synthetic_root, tmp_path, value):
    bad = Faults(header_values=(("Content-Length", value),), paths=(f"{NVS}/{METADATA}",))
    with serve(synthetic_root, bad) as server:
        with pytest.raises(FileDownloadError, match="malformed Content-Length header.*gave up after 2 attempts"):
            fetch(tmp_path, NVS, url=server.url, retry=FAST, dry_run=True)


@pytest.mark.parametrize("value", ["bytes 0-1/" + "9" * 5000, "bytes \u00b9-\u00b2/\u00b3", "bytes 5-2/10"])
def test_a_malformed_content_range_fails_that_file_and_keeps_its_part(synthetic_root, tmp_path, value):
    original = (synthetic_root / NVS / PCD).read_bytes()
    part = tmp_path / NVS / f"{PCD}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(original[: len(original) // 2])
    bad = Faults(header_values=(("Content-Range", value),), paths=(f"{NVS}/{PCD}",))
    with serve(synthetic_root, bad) as server:
        with pytest.raises(FetchIncomplete) as caught:
            fetch(tmp_path, NVS, url=server.url, retry=FAST, assets=["pointclouds"])
    [failed] = caught.value.summary.failed
    assert failed.path == PCD and "Content-Range" in failed.error
    assert original.startswith(part.read_bytes()) and not (tmp_path / NVS / PCD).exists()


def test_the_loopback_server_ignores_a_range_it_cannot_parse(synthetic_root):
    size = (synthetic_root / NVS / METADATA).stat().st_size
    with serve(synthetic_root) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        for header in ("bytes=" + "9" * 5000 + "-", "bytes=\u00b2-", "bytes=1-2,5-6"):
            connection.request("GET", f"/{server.token}/{NVS}/{METADATA}", headers={"Range": header.encode("utf-8")})
            response = connection.getresponse()
            assert (response.status, len(response.read())) == (200, size), header
        connection.close()


# ---------------------------------------------------------------- 15: the URL kept out of argv
@pytest.fixture
def no_configured_url(tmp_path, monkeypatch) -> Path:
    """No URL in the environment; XDG_CONFIG_HOME and HOME are fresh folders (the first's .env path is returned)."""
    monkeypatch.delenv("NERSEMBLE_BENCHMARK_URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the official kit's ~/.config/.../.env is read too
    return tmp_path / "config" / "nersemble_benchmark" / ".env"


def test_the_url_from_standard_input_stays_out_of_argv_and_output(synthetic_root, tmp_path, no_configured_url):
    with serve(synthetic_root) as server:
        command = cli_command("fetch", tmp_path / "out", NVS, "--url-file", "-", "--dry-run", "-vv")
        done = subprocess.run(command, input=server.url + "\n", capture_output=True, text=True, timeout=120,
                              env={**os.environ})
        assert done.returncode == 0, done.stderr
        assert f"{NVS}/{METADATA}" in done.stdout  # the dry run listed what the server has
        for text in (" ".join(command), done.stdout, done.stderr):
            assert server.token not in text and "127.0.0.1" not in text


def test_the_url_from_a_file_in_either_spelling(synthetic_root, tmp_path, no_configured_url):
    url_file = tmp_path / "url.txt"
    with serve(synthetic_root) as server:
        for content in (f"# my access link\n\n{server.url}\n", f'NERSEMBLE_BENCHMARK_URL = "{server.url}"\n'):
            url_file.write_text(content)
            result = CliRunner().invoke(main, ["fetch", str(tmp_path / "out"), NVS, "--url-file", str(url_file),
                                               "--dry-run"])
            assert result.exit_code == 0, result.output
            assert server.token not in result.output
        both = CliRunner().invoke(main, ["fetch", str(tmp_path / "out"), NVS, "--url-file", str(url_file),
                                         "--url", server.url, "--dry-run"])
        assert both.exit_code == 2 and "not both" in both.output and server.token not in both.output


@pytest.mark.parametrize("where", ["env", "url-file"])
@pytest.mark.parametrize("problem", ["world-writable", "other owner"])
def test_a_url_file_others_can_change_is_refused(synthetic_root, tmp_path, no_configured_url, where, problem):
    path = no_configured_url if where == "env" else tmp_path / "url.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with serve(synthetic_root) as server:
        path.write_text(f"NERSEMBLE_BENCHMARK_URL={server.url}\n")
        if problem == "world-writable":
            path.chmod(0o666)
        else:
            if os.geteuid() != 0:
                pytest.skip("giving a file to another user needs root")
            os.chown(path, 65534, 65534)
        arguments = ["fetch", str(tmp_path / "out"), NVS, "--dry-run"]
        result = CliRunner().invoke(main, arguments + (["--url-file", str(path)] if where == "url-file" else []))
        assert server.requests == []
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    expected = "is writable by every user" if problem == "world-writable" else "is owned by another user"
    assert line.startswith(f"Error: {path} {expected}") and "refusing to read it" in line
    assert server.token not in line


def test_a_private_env_file_is_still_read(synthetic_root, tmp_path, no_configured_url):
    no_configured_url.parent.mkdir(parents=True)
    with serve(synthetic_root) as server:
        no_configured_url.write_text(f"NERSEMBLE_BENCHMARK_URL = '{server.url}'\n")
        no_configured_url.chmod(0o600)
        result = CliRunner().invoke(main, ["fetch", str(tmp_path / "out"), NVS, "--dry-run"])
    assert result.exit_code == 0, result.output
