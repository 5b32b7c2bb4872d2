"""Encode predicted videos into H.264 mp4 files as their frames arrive, several videos in parallel.

Each video is one task: read a block, convert it to uint8, feed it to libx264, repeat. Tasks run on a pool
of threads, or on a dask.distributed cluster whose workers can write the target folder.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import Cancelled, SubmissionError
from ..progress import Progress
from ..video import SUBMISSION_CRF, VideoWriter
from .frames import to_uint8
from .sources import FrameSource



@dataclass(frozen=True)
class EncodeSettings:
    """How every video of a submission is encoded: size, rate and libx264 crf."""

    width: int
    height: int
    fps: float
    crf: int = SUBMISSION_CRF


def encode_video(
    source: FrameSource,
    path: Path,
    settings: EncodeSettings,
    on_frames: Progress | None = None,
    cancelled: threading.Event | None = None,
) -> int:
    """Stream ``source`` into an mp4 at ``path`` and return its frame count; no partial file survives an error."""
    import av

    written = 0
    try:
        with VideoWriter(
            path, width=settings.width, height=settings.height, fps=settings.fps, crf=settings.crf
        ) as writer:
            for block in read_ahead(source.blocks()):
                if cancelled is not None and cancelled.is_set():
                    raise Cancelled(source.video)
                frames = to_uint8(block, source.video, written)
                if frames.shape[1:] != (settings.height, settings.width, 3):
                    raise SubmissionError(
                        f"Frame {written} of {source.video} has shape {frames.shape[1:]}; "
                        f"expected ({settings.height}, {settings.width}, 3)."
                    )
                for frame in frames:
                    writer.write(frame)
                written += len(frames)
                if on_frames is not None:
                    on_frames(len(frames))
    except (av.FFmpegError, OSError) as error:
        Path(path).unlink(missing_ok=True)
        raise SubmissionError(f"Encoding {source.video} into {path} failed ({error}).") from error
    except BaseException:
        Path(path).unlink(missing_ok=True)
        raise
    if written != source.n_frames:
        Path(path).unlink(missing_ok=True)
        raise SubmissionError(
            f"{source.video} yielded {written} frames while reading; {source.n_frames} were announced."
        )
    return written


def read_ahead(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Yield ``blocks`` while a helper thread already reads the next one (at most one block ahead), so
    reading and decompressing overlap with encoding; memory stays bounded at two blocks."""
    slot: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def offer(item: object) -> bool:
        """Put ``item`` in the slot unless the consumer has stopped; False once it has."""
        while not stop.is_set():
            try:
                slot.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for block in blocks:
                if not offer(block):
                    return
            offer(done)
        except BaseException as error:  # handed to the consumer, which raises it
            offer(error)

    reader = threading.Thread(target=produce, name="read-ahead", daemon=True)
    reader.start()
    try:
        while (item := slot.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def encode_videos(
    jobs: Sequence[tuple[FrameSource, Path]],
    settings: EncodeSettings,
    *,
    workers: int | None = None,
    client=None,
    progress: Progress | None = None,
) -> None:
    """Encode every (source, target path) job; ``progress`` receives frame counts as they are done.

    Without ``client`` the jobs run on ``workers`` threads, each streaming
    frames (progress per block). With a dask.distributed ``client`` each job is a task on the cluster
    (progress per finished video). The first error stops the run and is raised.
    """
    if client is None:
        _encode_threaded(jobs, settings, workers, progress)
    else:
        _encode_distributed(jobs, settings, client, progress)


def _encode_threaded(jobs, settings: EncodeSettings, workers: int | None, progress: Progress | None) -> None:
    """One thread per video up to ``workers``: plain threads, as nothing is shared between the videos
    (dask's threaded scheduler would add nothing here but a task graph and its import of dask.distributed)."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    cancelled = threading.Event()
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1, thread_name_prefix="encode") as pool:
        futures = [pool.submit(encode_video, source, path, settings, progress, cancelled) for source, path in jobs]
        try:
            for future in wait(futures, return_when=FIRST_EXCEPTION).done:
                future.result()  # raises the error of a video that failed
        except BaseException:
            cancelled.set()  # running tasks stop at their next block; leaving `with` waits for them
            for future in futures:
                future.cancel()
            raise


def _encode_distributed(jobs, settings: EncodeSettings, client, progress: Progress | None) -> None:
    from distributed import as_completed

    futures = [
        client.submit(functools.partial(encode_video, source, path, settings), pure=False) for source, path in jobs
    ]
    try:
        for future in as_completed(futures):
            n_frames = future.result()
            if progress is not None:
                progress(n_frames)
    except BaseException:
        client.cancel(futures)
        raise
