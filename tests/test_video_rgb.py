"""iter_frames converts decoded frames to RGB in an FFmpeg filter graph whose pictures come from a pool: the same
pixels as PyAV's ``to_ndarray(format="rgb24")``, each video's frames reusing a few buffers, and a frame a caller
keeps never overwritten by the next."""

from __future__ import annotations

import av
import numpy as np
import pytest

from nersemble_zarr.video import RgbConverter, VideoWriter, iter_frames


def write_video(path, frames: int, width: int, height: int) -> None:
    rng = np.random.default_rng(width)
    with VideoWriter(path, width=width, height=height, fps=73, crf=20, preset="ultrafast", threads=1) as writer:
        for _ in range(frames):
            writer.write(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def pyav_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_frames_are_pyavs_pixels_kept_whole_while_held(tmp_path):
    for width, height in ((66, 98), (34, 50), (250, 146)):  # widths whose RGB rows need padding, and one that not
        path = tmp_path / f"cam_{width}.mp4"
        write_video(path, 6, width, height)
        held = list(iter_frames(path))  # every frame kept: the pool hands out new buffers, overwriting none
        expected = pyav_frames(path)
        assert len(held) == len(expected) == 6
        for ours, theirs in zip(held, expected):
            assert ours.shape == (height, width, 3) and ours.dtype == np.uint8
            np.testing.assert_array_equal(ours, theirs)
        grey = list(iter_frames(path, gray=True, start=2, stop=4))
        np.testing.assert_array_equal(np.stack(grey), np.stack(expected[2:4])[..., 0])


def test_a_frame_dropped_gives_its_buffer_to_the_next(tmp_path):
    path = tmp_path / "cam.mp4"
    write_video(path, 4, 66, 98)
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    convert = RgbConverter(frames[0])
    first = convert(frames[0])
    address = first.__array_interface__["data"][0]
    expected = first.copy()
    del first
    second = convert(frames[1])
    assert second.__array_interface__["data"][0] == address, "a new buffer for every frame"
    third = convert(frames[2])
    assert third.__array_interface__["data"][0] != address, "a buffer still held was handed out again"
    assert not np.array_equal(second, expected)


@pytest.mark.parametrize("colorspace, color_range", [("bt709", "tv"), ("bt709", "pc"), ("smpte170m", "tv")])
def test_a_video_tagged_with_a_colour_space_converts_as_pyav_converts_it(tmp_path, colorspace, color_range):
    path = tmp_path / "tagged.mp4"
    picture = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.options = {"colorspace": colorspace, "color_range": color_range}
        for _ in range(2):
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        decoded = next(container.decode(video=0))
    assert decoded.colorspace != 2  # the tag arrived (2: unspecified)
    np.testing.assert_array_equal(RgbConverter(decoded)(decoded), decoded.to_ndarray(format="rgb24"))
