"""A newcomer's first hour (issue 13): the documented commands work as written, and errors name the right thing.

Every test drives the CLI (CliRunner through ``run_cli``, or a subprocess) and checks the exit code, the
one-line message and the files left behind.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import run_cli, serving_synthetic, tree_digest
from nersemble_zarr import catalogue
from nersemble_zarr.demo import demo_config, run_demo_with
from nersemble_zarr.synthetic.server import serve

VIDEO = "nvs/388/sequences/GLASSES/images/cam_222200042.mp4"


def error_line(output: str) -> str:
    """The one error line of a failed command (and check there is exactly one)."""
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output
    return lines[0]


# ---------------------------------------------------------------- 1: demo --size small
def test_small_demo_serves_every_camera_fetch_asks_for(tmp_path):
    """The small demo at a reduced size (same cameras and sequences, tiny frames) runs end to end; the real
    one differs only in resolution, frame count and points."""
    small = demo_config("small")
    assert small.nvs_serials == catalogue.NVS_TRAIN_SERIALS  # fetch asks for every train camera
    reduced = dataclasses.replace(small, scale=0.05, n_frames=2, n_points=200)
    lines: list[str] = []
    paths = run_demo_with(tmp_path / "demo", reduced, workers=2, report=lines.append)
    assert any("fetch nvs: 29 files: 29 downloaded" in line for line in lines), lines
    with zipfile.ZipFile(paths.submission("nvs")) as archive:
        assert len(archive.namelist()) == 3
    again: list[str] = []
    run_demo_with(tmp_path / "demo", reduced, workers=2, report=again.append)
    assert any("29 already complete" in line for line in again), again


# ---------------------------------------------------------------- 3: the shape error names the options
def test_export_of_frames_of_another_size_names_resolution_and_partial(converted, tmp_path):
    output = tmp_path / "submission.zip"
    result = run_cli("export-submission", converted, output, "--benchmark", "nvs", "--partial", exit_code=1)
    line = error_line(result.output)
    assert "--resolution WIDTHxHEIGHT" in line and "--partial" in line and "1100x1604" in line
    assert not output.exists() and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 4: remote stores and schedulers
def test_info_of_an_s3_store_without_credentials_is_one_line(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL="http://127.0.0.1:9",
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    result = subprocess.run([sys.executable, "-m", "nersemble_zarr.cli", "info", "s3://bucket/x.zarr"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    line = error_line(result.stderr)
    assert "s3://bucket/x.zarr" in line and "NoCredentialsError" in line and "AWS_ACCESS_KEY_ID" in line


def test_an_unknown_scheduler_is_one_line(converted, tmp_path):
    result = run_cli("export-frames", converted, tmp_path / "out", "-p", "388", "--scheduler", "foo", exit_code=2)
    assert "foo" in error_line(result.output)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 5: errors name the right thing
def test_a_participant_filter_applies_to_the_benchmark_that_has_it(synthetic_root, tmp_path):
    store = tmp_path / "z.zarr"
    result = run_cli("convert", synthetic_root, store, "-p", "388", "-j", "2", exit_code=0)
    assert "Converted 1 sequence into" in result.output  # and the plural is right
    assert sorted(p.name for p in store.iterdir() if p.is_dir()) == ["nvs"]
    result = run_cli("convert", synthetic_root, store, "-p", "393", "-s", "EXP-1-head", "-j", "2", exit_code=0)
    assert (store / "mono_flame_avatar" / "393" / "EXP-1-head").is_dir()


@pytest.mark.parametrize("arguments, named", [
    (("-b", "nvs", "-s", "FOO"), "'FOO'"),
    (("-p", "999"), "999"),
    (("-p", "388", "-s", "EXP-1-head"), "participant 388"),
])
def test_convert_names_the_participant_or_sequence_that_matched_nothing(synthetic_root, tmp_path, arguments, named):
    store = tmp_path / "z.zarr"
    result = run_cli("convert", synthetic_root, store, *arguments)
    assert result.exit_code != 0
    assert named in error_line(result.output)
    assert not store.exists()


def test_meshes_names_an_unknown_sequence(converted, standin_dir, tmp_path):
    store = tmp_path / "z.zarr"
    shutil.copytree(converted, store)
    before = tree_digest(store)
    result = run_cli("meshes", store, "-s", "FOO", "--flame-dir", standin_dir, exit_code=1)
    assert "'FOO'" in error_line(result.output)
    assert tree_digest(store) == before


def test_a_bad_url_option_is_blamed_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("NERSEMBLE_BENCHMARK_URL", "http://127.0.0.1:9/unused")
    result = run_cli("fetch", tmp_path / "root", "nvs", "--url", "foo", exit_code=2)
    line = error_line(result.output)
    assert "--url" in line and "NERSEMBLE_BENCHMARK_URL" not in line
    assert not (tmp_path / "root").exists()


def test_validate_with_the_wrong_benchmark_says_which_it_is(synthetic_root, tmp_path):
    from nersemble_zarr.demo import ground_truth_predictions
    from nersemble_zarr.submission import export_submission
    from nersemble_zarr.synthetic import SyntheticConfig

    config = SyntheticConfig.tiny()
    output = tmp_path / "mono.zip"
    export_submission(ground_truth_predictions(config, "mono_flame_avatar"), output, "mono_flame_avatar",
                      root=synthetic_root, resolution=config.frame_size("mono_flame_avatar"), partial=True, workers=2)
    result = run_cli("validate-submission", output, "--benchmark", "nvs", "--partial", exit_code=1)
    assert "are mono_flame_avatar videos, not nvs ones; validate with --benchmark mono_flame_avatar" in result.output


# ---------------------------------------------------------------- 6: a corrupt video is set aside, fetch replaces it
def test_a_same_size_corrupt_video_is_set_aside_and_the_next_fetch_replaces_it(synthetic_root, tmp_path):
    root = tmp_path / "ROOT"
    shutil.copytree(synthetic_root, root)
    video = root / VIDEO
    data = bytearray(video.read_bytes())
    for index in range(len(data) // 3, len(data) - 200):
        data[index] ^= 0x5A
    video.write_bytes(bytes(data))  # same size: fetch alone would call it complete
    result = run_cli("convert", root, tmp_path / "z.zarr", "-b", "nvs", "-j", "2", exit_code=1)
    line = error_line(result.output)
    command = f"nersemble-zarr fetch {root} nvs -p 388"
    assert str(video) in line and "cam_222200042.mp4.corrupt" in line and f"`{command}`" in line
    aside = video.with_name(video.name + ".corrupt")
    assert not video.exists() and aside.read_bytes() == bytes(data)  # kept, not deleted
    assert not (tmp_path / "z.zarr").exists()
    with serve(synthetic_root) as server:
        fetched = run_cli("fetch", root, "nvs", "-p", "388", "--url", server.url, exit_code=0)
    assert "1 downloaded" in fetched.output
    assert video.read_bytes() == (synthetic_root / VIDEO).read_bytes()
    run_cli("convert", root, tmp_path / "z.zarr", "-b", "nvs", "-j", "2", exit_code=0)


# ---------------------------------------------------------------- 9: progress bars and wording
def _fetch_on_a_terminal(root: Path, url: str) -> str:
    """Run ``fetch`` as a subprocess whose stderr is a pseudo-terminal; return what it drew there."""
    import pty

    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # tqdm sizes bars to it
    try:
        subprocess.run([sys.executable, "-m", "nersemble_zarr.cli", "fetch", str(root), "nvs", "--url", url, "-j", "2"],
                       stdout=subprocess.DEVNULL, stderr=follower, timeout=300, check=True)
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal is closed: everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    return drawn.decode(errors="replace")


def test_fetch_bar_only_on_a_terminal_and_only_with_bytes_to_fetch(synthetic_root, tmp_path):
    with serve(synthetic_root) as server:
        piped = run_cli("fetch", tmp_path / "piped", "nvs", "--url", server.url, "-j", "2", exit_code=0)
        first = _fetch_on_a_terminal(tmp_path / "tty", server.url)
        again = _fetch_on_a_terminal(tmp_path / "tty", server.url)
    assert "fetch nvs" not in piped.output  # like every other command's bar: hidden outside a terminal
    assert "fetch nvs" in first
    assert "fetch nvs" not in again and "0.00B" not in again  # nothing to download: no empty bar


def test_preview_refuses_an_output_that_is_not_png(converted, tmp_path):
    output = tmp_path / "x.jpg"
    result = run_cli("preview", converted, "-p", "388", "-o", output, exit_code=2)
    assert "x.jpg" in result.output and ".png" in result.output
    assert not output.exists()


# ---------------------------------------------------------------- 2: a command serves the synthetic benchmark
def test_serve_synthetic_writes_the_url_to_a_private_file_only(synthetic_root, tmp_path):
    env_file = tmp_path / "synthetic.env"
    with serving_synthetic(synthetic_root, env_file) as (server, output):
        assert env_file.stat().st_mode & 0o777 == 0o600
        url = env_file.read_text().strip().split("=", 1)[1].strip('"')
        fetched = run_cli("fetch", tmp_path / "root", "nvs", "-p", "388", env={"NERSEMBLE_BENCHMARK_URL": url},
                          exit_code=0)
        assert "29 downloaded" in fetched.output
    assert server.returncode == 0, output["stderr"]
    assert not env_file.exists()  # removed when the server stops
    assert url not in output["stdout"] + output["stderr"] and "127.0.0.1" in output["stdout"]


# ---------------------------------------------------------------- 7: info says which cameras, frames and splits
def test_info_lists_cameras_splits_and_timesteps_and_wraps_the_missing(converted):
    result = run_cli("info", converted, exit_code=0)
    lines = result.output.splitlines()
    assert "    timesteps: 6 timesteps, original frames 0..15" in lines
    assert "    test cameras (3, no frames): 222200046, 222200037, 222200039" in lines
    assert any(line.startswith("    train cameras (13, 13 with frames): ") for line in lines)
    assert "    nvs: every sequence of participant(s) 422, 443, 445, 475" in lines
    assert max(len(line) for line in lines if "not in the store" in line or "every sequence" in line) < 120


# ---------------------------------------------------------------- 10: python -m and shell completion
def test_python_dash_m_and_shell_completion(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "nersemble_zarr", "--help"], capture_output=True, text=True,
                               timeout=120)
    assert help_text.returncode == 0 and "serve-synthetic" in help_text.stdout
    script = Path(sys.executable).with_name("nersemble-zarr")
    env = {**os.environ, "_NERSEMBLE_ZARR_COMPLETE": "bash_complete", "COMP_WORDS": "nersemble-zarr conv",
           "COMP_CWORD": "1"}
    completed = subprocess.run([str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert completed.returncode == 0 and completed.stdout.split() == ["plain,convert"]
    source = subprocess.run([str(script)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "_NERSEMBLE_ZARR_COMPLETE": "bash_source"})
    assert "complete -o nosort -F" in source.stdout  # what README tells bash users to eval


# ---------------------------------------------------------------- 8: the dots can be thinned or hidden
def test_preview_dots_can_be_thinned_or_hidden(converted, tmp_path):
    import imagecodecs
    import numpy as np

    green = {}
    for dots in (1500, 50, 0):
        output = tmp_path / f"sheet-{dots}.png"
        run_cli("preview", converted, "-p", "388", "--dots", dots, "-o", output, exit_code=0)
        pixels = imagecodecs.png_decode(output.read_bytes())
        green[dots] = int(np.all(pixels[..., :3] == (0, 255, 0), axis=-1).sum())
    assert green[1500] > green[50] > green[0] == 0
