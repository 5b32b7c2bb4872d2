"""Atomic file output: the temporary file never outlives a failed write, and planted names are refused."""

import os

import pytest

from nersemble_zarr.atomic import atomic_path, write_atomic
from nersemble_zarr.errors import ConfigError


def test_a_move_that_fails_removes_the_temporary_file(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(OSError):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"new")
            (target / "child").mkdir(parents=True)  # a folder appears under the final name: the move fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    assert target.is_dir()


def test_an_error_while_writing_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_an_output_that_is_a_fifo_is_refused_before_writing(tmp_path):
    target = tmp_path / "pipe"
    os.mkfifo(target)
    with pytest.raises(ConfigError, match="is a FIFO"):
        write_atomic(target, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]
