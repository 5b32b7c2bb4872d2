"""Concurrent runs are serialised: one fetch per ROOT and benchmark, one convert per store (issue 11).

The first run is a real second process (a throttled ``nersemble-zarr fetch``, or a process holding a
store's writer lock); the second run must stop at once with one sentence naming that process, write
nothing, and a rerun after the first one is gone (even killed) must complete.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from nersemble_zarr.cli.main import main
from nersemble_zarr.convert import convert
from nersemble_zarr.errors import DownloadError, LockError
from nersemble_zarr.fetch import fetch
from nersemble_zarr.storage import writer_lock_name
from nersemble_zarr.synthetic.server import Faults, serve

FETCH_LOCK = ".nersemble_zarr-fetch-nvs.lock"
HOLD_STORE_LOCK = ("import sys; from nersemble_zarr.storage import writer_lock\n"
                   "with writer_lock(sys.argv[1]):\n    print('held', flush=True); sys.stdin.read()\n")


def wait_for(condition, timeout_s: float = 60.0) -> None:
    """Poll ``condition`` until true (a bounded wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the first run never got going"
        time.sleep(0.02)


def test_a_second_fetch_into_one_root_waits_for_none_and_names_the_first(synthetic_root, tmp_path) -> None:
    root = tmp_path / "root"
    args = ["-p", "388", "-a", "pointclouds", "--pointcloud-frames", "all"]
    with serve(synthetic_root, Faults(bytes_per_second=40_000, paths=("*.pcd",))) as server:
        first = subprocess.Popen([sys.executable, "-m", "nersemble_zarr.cli", "fetch", str(root), "nvs",
                                  "--url", server.url, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: any(root.rglob("*.pcd.part")))
            with pytest.raises(LockError, match=rf"Another fetch of nvs into .* is running \(process {first.pid}\)"):
                fetch(root, "nvs", url=server.url, participants=[388], assets=["pointclouds"])
            cli = CliRunner().invoke(main, ["fetch", str(root), "nvs", "--url", server.url, *args])
            assert cli.exit_code == 1 and cli.output.count("Error:") == 1 and f"process {first.pid}" in cli.output
            assert "Traceback" not in cli.output
            fetch(root, "mono_flame_avatar", url=server.url)  # another benchmark, another folder: runs alongside
        finally:
            first.send_signal(signal.SIGKILL)  # the first run dies holding the lock: the OS releases it
            first.wait(timeout=30)
        server.faults = Faults()
        summary = fetch(root, "nvs", url=server.url, participants=[388], assets=["pointclouds"],
                        pointcloud_frames="all")
    assert not summary.failed
    for path in (root / "nvs").rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (synthetic_root / path.relative_to(root)).read_bytes(), path
    assert not list(root.rglob("*.part")) and not list(root.glob(".*.lock"))


def test_a_stale_lock_file_of_a_dead_run_is_taken_over(synthetic_root, tmp_path) -> None:
    (tmp_path / FETCH_LOCK).write_text("999999999\n")
    with serve(synthetic_root) as server:
        fetch(tmp_path, "nvs", url=server.url, assets=["calibration"])
    assert (tmp_path / "nvs/388/calibration/camera_params.json").is_file()
    assert not (tmp_path / FETCH_LOCK).exists()


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_linked_lock_file_is_refused_and_its_target_untouched(synthetic_root, tmp_path, link) -> None:
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    root = tmp_path / "root"
    root.mkdir()
    lock = root / FETCH_LOCK
    (lock.symlink_to if link == "symlink" else lock.hardlink_to)(outside)
    with serve(synthetic_root) as server:
        cli = CliRunner().invoke(main, ["fetch", str(root), "nvs", "--url", server.url])
        assert server.requests == []
    assert cli.exit_code == 1 and cli.output.count("Error:") == 1 and str(lock) in cli.output
    assert outside.read_text() == "keep me" and not (root / "nvs").exists()


def test_a_failed_fetch_leaves_no_lock_and_no_folder_it_made(synthetic_root, tmp_path) -> None:
    root = tmp_path / "new-root"
    with serve(synthetic_root) as server:
        with pytest.raises(DownloadError, match="HTTP 403"):
            fetch(root, "nvs", url=server.url + "-wrong")
    assert not root.exists()


@pytest.fixture
def store_lock_holder(tmp_path):
    """Start a process holding the writer lock of ``tmp_path/bench.zarr``; yields (process, store path)."""
    store = tmp_path / "bench.zarr"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_STORE_LOCK, str(store)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder, store
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=30)


def test_a_second_convert_into_one_store_is_refused_naming_the_first(synthetic_root, store_lock_holder) -> None:
    holder, store = store_lock_holder
    with pytest.raises(LockError, match=rf"Another run writing the store .*bench.zarr is running "
                                        rf"\(process {holder.pid}\)"):
        convert(synthetic_root, store, benchmarks=("mono_flame_avatar",))
    cli = CliRunner().invoke(main, ["convert", str(synthetic_root), str(store), "-b", "nvs"])
    assert cli.exit_code == 1 and cli.output.count("Error:") == 1 and f"process {holder.pid}" in cli.output
    lock = store.parent / writer_lock_name(store)
    assert not store.exists() and lock.is_file()  # nothing written
    holder.stdin.close()  # the holder ends its run and removes its lock
    holder.wait(timeout=30)
    assert not lock.exists()
    summary = convert(synthetic_root, store, benchmarks=("mono_flame_avatar",))
    assert summary.videos_written > 0 and not lock.exists()


def test_the_lock_of_a_killed_convert_is_taken_over(synthetic_root, store_lock_holder) -> None:
    holder, store = store_lock_holder
    holder.kill()
    holder.wait(timeout=30)
    lock = store.parent / writer_lock_name(store)
    assert lock.is_file()  # what SIGKILL leaves
    convert(synthetic_root, store, benchmarks=("mono_flame_avatar",))
    assert not lock.exists() and (store / "zarr.json").is_file()


def test_a_file_as_the_store_is_still_refused_as_no_store(synthetic_root, tmp_path) -> None:
    store = tmp_path / "bench.zarr"
    store.write_text("not a store")
    cli = CliRunner().invoke(main, ["convert", str(synthetic_root), str(store)])
    assert cli.exit_code == 1 and "exists and is not a zarr store" in cli.output
    assert store.read_text() == "not a store" and os.listdir(tmp_path) == ["bench.zarr"]


def test_a_lock_binds_its_own_store_only(synthetic_root, store_lock_holder) -> None:
    holder, store = store_lock_holder
    summary = convert(synthetic_root, store.with_name("other.zarr"), benchmarks=("mono_flame_avatar",))
    assert summary.videos_written > 0 and holder.poll() is None and not store.exists()
