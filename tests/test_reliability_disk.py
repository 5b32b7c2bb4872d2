"""Full disks: convert and fetch on a small tmpfs, and on files the OS refuses to grow (RLIMIT_FSIZE).

A write the OS refuses must end in one ``Error:`` line (no traceback) and exit code 1, leave what the
user had untouched (already converted sequences, complete fetched files) and nothing partial under a
final name; after freeing space (the tmpfs remounted bigger, or the limit lifted) a rerun must complete.
The tmpfs tests need permission to mount (root); the RLIMIT_FSIZE tests run anywhere.
"""

from __future__ import annotations

import contextlib
import resource
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

from crash_campaign import cli_command
from fault_schedules import write_source_tree
from helpers import meshes_in_consolidated_metadata, run_cli, store_digests, tree_digest
from nersemble_zarr.flame.store import CHUNK_TIMESTEPS
from nersemble_zarr.synthetic.server import serve
from test_reliability_fetch import check_local_files

FETCH_OPTIONS = ["-p", "388", "-a", "calibration,pointclouds", "--pointcloud-frames", "all", "-j", "3"]


@contextlib.contextmanager
def tmpfs(folder: Path, size_kib: int) -> Iterator[Callable[[int], None]]:
    """Mount a tmpfs of ``size_kib`` at ``folder``; yields a function that remounts it with another size."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); the RLIMIT_FSIZE tests cover this")

    def resize(kib: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={kib}k", str(folder)], check=True)

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def file_size_limited(limit_bytes: int) -> Callable[[], None]:
    """preexec_fn for a child whose every file stops growing at ``limit_bytes`` (writes fail with EFBIG)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer instead of failing it
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return limit


def assert_one_line_error(output: str, *fragments: str) -> None:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert "Traceback" not in output and lines, output
    assert lines[-1].startswith("Error: ") and all(f in lines[-1] for f in fragments), lines[-1]


# ------------------------------------------------------------------------------------------------ convert
def test_convert_on_a_full_tmpfs_keeps_converted_sequences_and_completes_after_growing(
    synthetic_root, converted, tmp_path
):
    with tmpfs(tmp_path / "disk", 1100) as resize:
        store = tmp_path / "disk" / "bench.zarr"
        first = run_cli("convert", synthetic_root, store, "-b", "mono_flame_avatar", "-j", "2")
        assert first.exit_code == 0, first.output
        before = tree_digest(store)
        full = run_cli("convert", synthetic_root, store, "-b", "nvs", "-j", "2")
        assert full.exit_code == 1
        assert_one_line_error(full.output, f"Writing the store {store} failed (No space left on device)",
                              "free space")
        assert tree_digest(store) == before, "the failed run must leave the store as it was"
        resize(8192)
        done = run_cli("convert", synthetic_root, store, "-j", "2")
        assert done.exit_code == 0, done.output
        assert store_digests(store) == store_digests(converted)


def test_convert_whose_files_cannot_grow_fails_in_one_line_and_reruns(synthetic_root, converted, tmp_path):
    store = tmp_path / "bench.zarr"
    limited = subprocess.run(cli_command("convert", synthetic_root, store, "-j", "2"), capture_output=True,
                             text=True, timeout=300, preexec_fn=file_size_limited(20_000))
    assert limited.returncode == 1, limited.stderr
    assert_one_line_error(limited.stderr, f"Writing the store {store} failed (File too large)")
    rerun = run_cli("convert", synthetic_root, store, "-j", "2")
    assert rerun.exit_code == 0, rerun.output
    assert store_digests(store) == store_digests(converted)


# ------------------------------------------------------------------------------------------------ fetch
@pytest.fixture(scope="module")
def fetch_source(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("disk-source")
    return root, write_source_tree(root, 4, (200 << 10, 300 << 10), seed=7)


def test_fetch_that_cannot_fit_is_refused_before_writing_and_runs_after_growing(fetch_source, tmp_path):
    """The free-space check on a real (tmpfs) disk: nothing but the index is written when the selection does not
    fit; a disk that fills in the middle of a file anyway (another writer) is the EFBIG case below."""
    source, paths = fetch_source
    with tmpfs(tmp_path / "disk", 600) as resize, serve(source) as server:
        out = tmp_path / "disk" / "root"
        full = run_cli("fetch", out, "nvs", "--url", server.url, *FETCH_OPTIONS)
        assert full.exit_code == 2
        assert_one_line_error(full.output, "more but only", "free at")
        assert server.token not in full.output
        written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
        assert written <= {"nvs/metadata.json", "nvs/.nersemble_zarr-fetch-nvs.lock", ".nersemble_zarr-fetch-nvs.lock"}
        assert not [r for r in server.requests if r.method == "GET" and not r.path.endswith("metadata.json")]
        resize(4096)
        done = run_cli("fetch", out, "nvs", "--url", server.url, *FETCH_OPTIONS)
        assert done.exit_code == 0, done.output
        assert check_local_files(out, source, paths) == (len(paths), 0)


def test_fetch_whose_files_cannot_grow_keeps_the_part_and_resumes(fetch_source, tmp_path):
    source, paths = fetch_source
    out = tmp_path / "root"
    with serve(source) as server:
        limited = subprocess.run(cli_command("fetch", out, "nvs", "--url", server.url, *FETCH_OPTIONS),
                                 capture_output=True, text=True, timeout=120, preexec_fn=file_size_limited(100_000))
        assert limited.returncode == 1
        assert_one_line_error(limited.stderr, "Could not fetch 4 of 6 files", "failed (File too large)")
        parts = sorted(out.rglob("*.part"))
        assert len(parts) == 4 and all(p.stat().st_size == 100_000 for p in parts)
        done = run_cli("fetch", out, "nvs", "--url", server.url, *FETCH_OPTIONS)
        assert done.exit_code == 0, done.output
    assert check_local_files(out, source, paths) == (len(paths), 0)


# ------------------------------------------------------------------------------------------------ meshes
def test_meshes_whose_files_cannot_grow_fails_in_one_line_and_reruns(mesh_input, standin_dir, tmp_path):
    store = Path(shutil.copytree(mesh_input, tmp_path / "store.zarr"))
    limited = subprocess.run(
        cli_command("meshes", store, "--flame-dir", standin_dir, "--device", "cpu", "--batch-size", CHUNK_TIMESTEPS),
        capture_output=True, text=True, timeout=300, preexec_fn=file_size_limited(100_000))
    assert limited.returncode == 1
    assert_one_line_error(limited.stderr, str(store), "rerun the same command")
    rerun = subprocess.run(
        cli_command("meshes", store, "--flame-dir", standin_dir, "--device", "cpu", "--batch-size", CHUNK_TIMESTEPS),
        capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert meshes_in_consolidated_metadata(store)
