"""``nersemble-zarr fetch`` through click's CliRunner and as a real subprocess: output, exit codes, secrecy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_cli
from nersemble_zarr.synthetic.server import Faults, serve

VIDEO = "nvs/388/sequences/GLASSES/images/cam_222200042.mp4"
SCRIPT = Path(sys.executable).with_name("nersemble-zarr")


@pytest.fixture
def no_configured_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No URL in the environment, an empty config folder and HOME (the kit's ~/.config); returns that folder."""
    monkeypatch.delenv("NERSEMBLE_BENCHMARK_URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the official kit's ~/.config/.../.env is read too
    return tmp_path / "config"


def test_fetch_with_url_option_prints_a_summary_and_no_secret(synthetic_root, tmp_path, no_configured_url) -> None:
    with serve(synthetic_root) as server:
        result = run_cli("fetch", str(tmp_path), "nvs", "--url", server.url, "-j", "2", "-vv")
    assert result.exit_code == 0, result.output
    assert "29 files: 29 downloaded" in result.output
    assert "fetch nvs" not in result.output  # the bar is drawn on a terminal only
    assert server.token not in result.output
    assert (tmp_path / VIDEO).read_bytes() == (synthetic_root / VIDEO).read_bytes()


def test_url_from_the_env_file_and_a_failed_file(synthetic_root, tmp_path, no_configured_url) -> None:
    source = Path(shutil.copytree(synthetic_root, tmp_path / "server"))
    (source / VIDEO).unlink()
    with serve(source) as server:
        env_file = no_configured_url / "nersemble_benchmark" / ".env"
        env_file.parent.mkdir(parents=True)
        env_file.write_text(f'NERSEMBLE_BENCHMARK_URL = "{server.url}"\n')
        result = run_cli("fetch", str(tmp_path / "out"), "nvs", "-p", "388", "--assets", "images,calibration")
    assert result.exit_code == 1
    assert f"Error: Could not fetch 1 of 15 files: {VIDEO} (the server answered HTTP 404" in result.output
    assert "14 files" not in result.output and "15 files: 14 downloaded" in result.output
    assert "Traceback" not in result.output and server.token not in result.output


def test_dry_run_lists_paths_sizes_and_total(synthetic_root, tmp_path) -> None:
    with serve(synthetic_root) as server:
        result = run_cli("fetch", str(tmp_path / "out"), "mono_flame_avatar", "--dry-run", "-a", "all",
                     env={"NERSEMBLE_BENCHMARK_URL": server.url})
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 10  # metadata, calibration, 2 videos, 4 tracking files, the participant's total, the total
    assert any(line.strip().endswith("mono_flame_avatar/393/sequences/FREE/tracking/flame2023_tracking.npz")
               for line in lines)
    calibration = "mono_flame_avatar/393/calibration/camera_params.json"
    assert f"{(synthetic_root / calibration).stat().st_size:,} B  {calibration}" in result.output  # exact bytes
    assert lines[-2].endswith("in all for mono_flame_avatar/393/ (7 files)")
    assert lines[-1].startswith("8 files, ") and "to download" in lines[-1] and "free at ROOT" in lines[-1]
    assert not (tmp_path / "out").exists() and server.token not in result.output


def test_bad_options_and_missing_url_exit_non_zero(synthetic_root, tmp_path, no_configured_url) -> None:
    with serve(synthetic_root) as server:
        unknown = run_cli("fetch", str(tmp_path), "nvs", "--url", server.url, "-a", "depth")
        frames = run_cli("fetch", str(tmp_path), "nvs", "--url", server.url, "--pointcloud-frames", "first")
        benchmark = run_cli("fetch", str(tmp_path), "nersemble", "--url", server.url)
        assert server.requests == []
    assert unknown.exit_code == 2 and "Error: Unknown asset 'depth'" in unknown.output
    assert frames.exit_code == 2 and "comma-separated list of frame numbers" in frames.output
    assert benchmark.exit_code == 2
    missing = run_cli("fetch", str(tmp_path), "nvs")
    assert missing.exit_code == 2 and "No access URL: set NERSEMBLE_BENCHMARK_URL" in missing.output


def test_real_subprocess_never_reveals_the_url(synthetic_root, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NERSEMBLE_BENCHMARK_URL"}
    faults = Faults(drop_after_bytes=500, paths=("*.npz",))  # forces retries, which are logged with -vv
    with serve(synthetic_root, faults) as server:
        env["NERSEMBLE_BENCHMARK_URL"] = server.url
        done = subprocess.run([str(SCRIPT), "fetch", str(tmp_path), "mono_flame_avatar", "-vv"],
                              env=env, capture_output=True, text=True, timeout=120)
        wrong = dict(env, NERSEMBLE_BENCHMARK_URL=server.url + "-wrong")
        failed = subprocess.run([str(SCRIPT), "fetch", str(tmp_path / "x"), "nvs", "--debug"],
                                env=wrong, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "retrying" in done.stderr and "6 files: 6 downloaded" in done.stdout
    assert failed.returncode != 0 and "HTTP 403" in failed.stderr and "Traceback" in failed.stderr
    for output in (done.stdout, done.stderr, failed.stdout, failed.stderr):
        assert server.token not in output and "127.0.0.1" not in output
