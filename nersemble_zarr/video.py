"""Video decode and encode through PyAV (FFmpeg with libx264), the only video path of the package.

Decoding is threaded and streams frames; nothing here holds a whole video in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import av
import numpy as np

from .errors import CorruptVideo, InputDataError

SUBMISSION_CRF = 14
MAX_PROBE_THREADS = 8  # videos opened at a time by probe_many


@dataclass(frozen=True)
class VideoInfo:
    """What a video stream says about itself: frame count, size, rate and codec."""

    n_frames: int
    height: int
    width: int
    fps: float
    codec: str
    pix_fmt: str


def _open(path: str | os.PathLike, what: str = "video", options: dict[str, str] | None = None):
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"The {what} {path} does not exist.")
    if path.stat().st_size == 0:
        raise InputDataError(f"The {what} {path} is empty (0 bytes); delete it and fetch it again.")
    try:
        container = av.open(str(path), options=options)
    except (av.FFmpegError, ValueError, OSError) as error:
        if what == "video":
            raise CorruptVideo(path, f"(not a readable video: {error})") from error
        raise InputDataError(f"The {what} {path} is not a readable video ({error}).") from error
    if not container.streams.video:
        container.close()
        raise InputDataError(f"The {what} {path} has no video stream.")
    return container


def probe(path: str | os.PathLike, *, quick: bool = False) -> VideoInfo:
    """Read frame count, size, fps and codec of a video by demuxing its packets.

    Opening a video makes FFmpeg decode its first frames to learn the pixel format and the decoder's delay (7
    frames of an H.264 stream, 0.2 s at 2200x3208). ``quick`` skips that decode: the size, frame count and rate
    come from the container's header alone and ``pix_fmt`` is "" (a header without a size falls back to the
    decode); nothing decodes the frames, so a video whose frames are broken passes a quick probe.
    """
    container = _open(path, options={"skip_frame": "all"} if quick else None)
    try:
        stream = container.streams.video[0]
        context = stream.codec_context
        if quick and not (context.width and context.height):
            info = None
        else:
            n_frames = stream.frames
            if not n_frames:
                n_frames = sum(1 for packet in container.demux(stream) if packet.size)
            rate = stream.average_rate or stream.guessed_rate or Fraction(0)
            info = VideoInfo(n_frames=int(n_frames), height=context.height, width=context.width, fps=float(rate),
                             codec=context.name, pix_fmt="" if quick else str(context.pix_fmt))
    except av.FFmpegError as error:
        raise CorruptVideo(path, f"({error})") from error
    finally:
        container.close()
    return info or probe(path)


def probe_many(paths: Sequence[str | os.PathLike], *, quick: bool = False) -> list[VideoInfo]:
    """``probe`` of every path, in order, several at a time: opening a video decodes a few frames to learn its
    stream (0.2 s for a 2200x3208 H.264 mp4; none with ``quick``) and FFmpeg does so without the GIL. The first
    failure in path order is raised."""
    from concurrent.futures import ThreadPoolExecutor

    if len(paths) < 2 or quick:
        return [probe(path, quick=quick) for path in paths]
    with ThreadPoolExecutor(min(len(paths), MAX_PROBE_THREADS, os.cpu_count() or 1)) as pool:
        return list(pool.map(probe, paths))


@dataclass(frozen=True)
class FrameFormat:
    """What every decoded frame of a video must be: the size and pixel format its stream header declares."""

    width: int
    height: int
    pix_fmt: str

    @classmethod
    def of_stream(cls, stream) -> "FrameFormat | None":
        """The header's format, or None when the header declares no size (then the first frame sets it)."""
        context = stream.codec_context
        if not context.width or not context.height or not context.pix_fmt:
            return None
        return cls(int(context.width), int(context.height), str(context.pix_fmt))

    @classmethod
    def of_frame(cls, frame) -> "FrameFormat":
        return cls(int(frame.width), int(frame.height), frame.format.name)

    def __str__(self) -> str:
        return f"{self.width}x{self.height} {self.pix_fmt}"


def format_change(expected: FrameFormat, frame) -> str | None:
    """Why a decoded frame breaks its video's format (another size or pixel format mid-stream), or None.

    The one per-frame check of every decode in the package: validate-submission, evaluate, convert."""
    found = FrameFormat.of_frame(frame)
    if found == expected:
        return None
    return f"its frames change from the header's {expected} to {found}"


@dataclass(frozen=True)
class DecodeCount:
    """What decoding every frame of a video found: the frames decoded, those whose data did not decode, and
    the first decoded frame whose size or pixel format differs from the header's (index, why)."""

    decoded: int
    failed: tuple[int, ...]   # indices (file order, from 0) of the frames whose data did not decode
    changed: tuple[int, str] | None = None


def count_decodable_frames(path: str | os.PathLike) -> DecodeCount:
    """Decode every frame of a video, counting them and noting each one that fails (no frames are kept).

    Slice threading only: frame threading reports an error several frames after the one that caused it.
    A file the demuxer cannot read to its end raises an InputDataError naming the last frame read. Every
    decoded frame is checked by ``format_change``; the first that fails is ``changed``.
    """
    container = _open(path)
    decoded, failed, index, changed = 0, [], 0, None
    try:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        expected = FrameFormat.of_stream(stream)
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets, None)
            except av.FFmpegError as error:
                raise InputDataError(f"The video {path} cannot be read past frame {index} ({error}).") from error
            if packet is None:
                break
            try:
                frames = packet.decode()
            except av.FFmpegError:
                failed.append(index)
                frames = []
            for frame in frames:
                expected = expected or FrameFormat.of_frame(frame)
                if changed is None and (why := format_change(expected, frame)) is not None:
                    changed = (decoded, why)
                decoded += 1
            index += 1 if packet.size else 0
    finally:
        container.close()
    return DecodeCount(decoded, tuple(failed), changed)


def iter_frames(
    path: str | os.PathLike, *, gray: bool = False, start: int = 0, stop: int | None = None, threads: int = 0
) -> Iterator[np.ndarray]:
    """Yield frames ``start <= i < stop`` of a video as uint8 arrays, (H, W, 3) RGB or (H, W) first channel.

    Decoding starts at the beginning (H.264 has no cheap exact seek) and is threaded over ``threads``
    (0 lets FFmpeg choose). A decode error names the file and the first frame (display order) that does
    not decode, which is not the count of frames decoded so far: a decoder holds frames back. A frame whose
    size or pixel format differs from the header's (``format_change``) is a CorruptVideo naming its index.
    """
    container = _open(path)
    delivered = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        expected = FrameFormat.of_stream(stream)
        packets = container.demux(stream)
        presented: list[int] = []  # presentation times of the packets demuxed so far
        decoded: set[int] = set()
        to_rgb: RgbConverter | None = None
        for packet in packets:
            if packet.pts is not None:
                presented.append(packet.pts)
            try:
                frames = packet.decode()
            except av.FFmpegError as error:
                index = _first_undecoded(packets, presented, decoded)
                raise CorruptVideo(path, f"at frame {index} ({error})") from error
            for frame in frames:
                expected = expected or FrameFormat.of_frame(frame)
                if (why := format_change(expected, frame)) is not None:
                    raise CorruptVideo(path, f"at frame {delivered} ({why})")
                decoded.add(frame.pts)
                if delivered >= start and (stop is None or delivered < stop):
                    to_rgb = to_rgb or RgbConverter(frame, threads)
                    rgb = to_rgb(frame)
                    # The first channel of the RGB picture, as the benchmark reads alpha maps.
                    yield rgb[..., 0] if gray else rgb
                delivered += 1
                if stop is not None and delivered >= stop:
                    return
    except av.FFmpegError as error:  # demuxing failed
        raise CorruptVideo(path, f"at frame {delivered} ({error})") from error
    finally:
        container.close()


class RgbConverter:
    """Turn a video's decoded frames into (H, W, 3) uint8 RGB arrays: the pixels of
    ``VideoFrame.to_ndarray(format="rgb24")`` (FFmpeg's swscale, bilinear flags), converted in a filter graph.

    The graph takes its output pictures from a pool, so a video's frames reuse the same few buffers, where
    ``to_ndarray`` allocates a new picture (21 MB at full size) for every frame and frees it to glibc, whose heap
    arenas keep what the decoding threads free. An array returned holds its buffer until it is dropped.
    ``threads``: the conversion's threads, as the decoder's (0: FFmpeg chooses).
    """

    def __init__(self, first: av.VideoFrame, threads: int = 0) -> None:
        self._graph = av.filter.Graph()
        self._graph.threads = threads
        source = self._graph.add_buffer(width=first.width, height=first.height, format=first.format.name,
                                        time_base=first.time_base or Fraction(1, 1))
        scale = self._graph.add("scale", "flags=bilinear")
        rgb = self._graph.add("format", "rgb24")
        sink = self._graph.add("buffersink")
        source.link_to(scale)
        scale.link_to(rgb)
        rgb.link_to(sink)
        self._graph.configure()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        self._graph.push(frame)
        return self._graph.pull().to_ndarray()


def _first_undecoded(packets, presented: list[int], decoded: set[int]) -> int:
    """Display index of the first frame that does not decode: decode the rest (skipping failures) and take
    the earliest presentation time that never came out."""
    for packet in packets:
        if packet.pts is not None:
            presented.append(packet.pts)
        try:
            decoded.update(frame.pts for frame in packet.decode())
        except av.FFmpegError:
            continue
    order = sorted(presented)
    missing = [index for index, pts in enumerate(order) if pts not in decoded]
    return missing[0] if missing else len(decoded)


class VideoWriter:
    """Encode RGB uint8 frames into an H.264 mp4 (yuv420p), frame by frame.

    Use as a context manager; frames are encoded as they arrive and the file is complete after ``close``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        width: int,
        height: int,
        fps: float,
        crf: int = SUBMISSION_CRF,
        codec: str = "libx264",
        preset: str = "medium",
        threads: int = 0,
        pix_fmt: str = "yuv420p",
        x264_params: str = "",
    ) -> None:
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self._container = av.open(str(self.path), mode="w", format="mp4")
        rate = Fraction(fps).limit_denominator(1000)
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.width = self.width
        self._stream.height = self.height
        self._stream.pix_fmt = pix_fmt
        self._stream.codec_context.thread_count = threads
        if codec == "libx264":
            self._stream.options = {"crf": str(crf), "preset": preset}
            if x264_params:  # extra libx264 settings, e.g. "no-mbtree=1" for run-to-run identical output
                self._stream.options = {**self._stream.options, "x264-params": x264_params}
        self.n_frames = 0

    def write(self, frame: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 RGB frame."""
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"Frame {self.n_frames} for {self.path.name} has shape {frame.shape} and dtype {frame.dtype}; "
                f"expected ({self.height}, {self.width}, 3) uint8."
            )
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.n_frames += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.write(frame)

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self._container is None:
            return
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def abort(self) -> None:
        """Close without flushing (after an error); the caller removes the file."""
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
