"""video.probe with quick=True (the dataset planner's): the same frame count, size, rate and codec as the full
probe, from the container's header, on real H.264 files written by PyAV."""

from __future__ import annotations

import numpy as np
import pytest

from nersemble_zarr.errors import CorruptVideo, InputDataError
from nersemble_zarr.video import VideoWriter, iter_frames, probe, probe_many


def write_video(path, frames: int, width: int = 66, height: int = 98) -> None:
    rng = np.random.default_rng(frames)
    with VideoWriter(path, width=width, height=height, fps=73, crf=20, preset="ultrafast", threads=1) as writer:
        for _ in range(frames):
            writer.write(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_a_quick_probe_reads_what_the_full_probe_reads_but_the_pixel_format(tmp_path):
    paths = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    write_video(paths[0], 9)
    write_video(paths[1], 4, width=34, height=50)
    for full, quick in zip(probe_many(paths), probe_many(paths, quick=True)):
        assert full.pix_fmt == "yuv420p" and quick.pix_fmt == ""
        assert (quick.n_frames, quick.height, quick.width, quick.fps, quick.codec) == (
            full.n_frames, full.height, full.width, full.fps, full.codec)
    assert [probe(p, quick=True).n_frames for p in paths] == [9, 4]
    assert sum(1 for _ in iter_frames(paths[0])) == 9  # decoding is unaffected by the quick probe's option


def test_a_quick_probe_refuses_what_is_no_video(tmp_path):
    path = tmp_path / "cam.mp4"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(CorruptVideo, match="cam.mp4"):
        probe(path, quick=True)
    path.write_bytes(b"")
    with pytest.raises(InputDataError, match="is empty"):
        probe(path, quick=True)
