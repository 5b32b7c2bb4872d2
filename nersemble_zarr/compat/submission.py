"""The official submission writers and readers (``nersemble_benchmark.data.submission_data``), streaming.

``add_video`` takes a list, any iterable or a generator of frames. Frames are checked as they come and
handed to a background encoder thread (a few frames ahead), so memory stays flat in the video's length
and the previous video still encodes while the caller renders the next one. The zip is written under a
hidden temporary name beside the target and moved onto it only by ``close()`` (or leaving ``with``
without an error): an error, or a writer never closed, leaves any older zip untouched.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import weakref
import zipfile
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional

import numpy as np

from .. import catalogue
from ..errors import SubmissionError, shown
from ..atomic import temporary_path
from ..outputs import check_output_file
from ..submission.encode import Cancelled, EncodeSettings, encode_video
from ..submission.expected import expected_submission
from ..submission.validator import measure_videos, validate_submission
from ..submission.zipsafety import open_zip

FRAMES_AHEAD = 4          # frames queued between the caller and the encoder
VIDEOS_IN_FLIGHT = 2      # the video being fed and the one before it, still encoding
_END = object()


class _StreamedVideo:
    """A FrameSource fed frame by frame from the caller's thread; ``n_frames`` is final once it ends."""

    def __init__(self, video: str) -> None:
        self.video = video
        self.n_frames = 0
        self._queue: queue.Queue = queue.Queue(maxsize=FRAMES_AHEAD)
        self.aborted = threading.Event()

    def put(self, frame: Any, encoder: Future) -> None:
        """Queue one frame; raise the encoder's error as soon as it has failed."""
        while True:
            if encoder.done():
                encoder.result()  # raises the encoder's error
                raise SubmissionError(f"The encoder of {self.video} stopped before all frames were given.")
            try:
                self._queue.put(frame, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self, encoder: Future) -> None:
        self.put(_END, encoder)

    def blocks(self) -> Iterator[np.ndarray]:
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self.aborted.is_set():
                    raise Cancelled(self.video) from None
                continue
            if item is _END:
                return
            self.n_frames += 1
            yield item[None]


def _encode_into_zip(source: _StreamedVideo, path: Path, settings: EncodeSettings, archive, lock) -> None:
    """Encode one streamed video to ``path``, then store it in the zip and delete the mp4."""
    encode_video(source, path, settings)
    with lock:
        archive.write(path, arcname=source.video)
    path.unlink()


def _discard(executor: ThreadPoolExecutor, sources: list, archive: zipfile.ZipFile, partial: Path, folder: Path) -> None:
    """Stop the encoders and remove everything the writer made; the target zip is never touched."""
    for source in sources:
        source.aborted.set()
    executor.shutdown(wait=True, cancel_futures=True)
    archive.close()
    partial.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def zip_output(zip_path: str | os.PathLike) -> Path:
    """The absolute path a writer's zip will have, refusing a folder or an existing non-regular file; its folder
    is created."""
    output = Path(zip_path).absolute()
    if output.is_dir():
        raise SubmissionError(f"The submission path {output} is a folder; give the path of the zip file to write.")
    check_output_file(output, "submission zip")
    output.parent.mkdir(parents=True, exist_ok=True)
    return output


class ClosedOnSuccess:
    """A writer used with ``with``: ``close()`` (the zip moves into place) after a clean block, the
    ``_finalizer`` (the temporary zip is discarded, the old one kept) after an error."""

    _finalizer: weakref.finalize

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._finalizer()

    def close(self) -> None:
        raise NotImplementedError


class VideoSubmissionDataWriter(ClosedOnSuccess):
    """Packs predicted videos into a submission zip; see the module docstring for what differs."""

    _benchmark = "nvs"

    def __init__(self, zip_path: str | os.PathLike) -> None:
        spec = catalogue.SPECS[self._benchmark]
        self._fps, self._width, self._height = spec.fps, spec.width, spec.height
        self._settings = EncodeSettings(spec.width, spec.height, spec.fps)
        output = self._zip_path = zip_output(zip_path)
        self._folder = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.", suffix=".videos"))
        self._partial = temporary_path(output)
        self._zipf = zipfile.ZipFile(self._partial, "x", compression=zipfile.ZIP_STORED, allowZip64=True)
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=VIDEOS_IN_FLIGHT, thread_name_prefix="submission-encoder")
        self._sources: list[_StreamedVideo] = []
        self._pending: list[Future] = []
        self._entries: set[str] = set()
        self._finalizer = weakref.finalize(
            self, _discard, self._executor, self._sources, self._zipf, self._partial, self._folder)

    def add_video(self, participant_id: int, sequence_name: str, serial: str, frames: Iterable[np.ndarray]) -> None:
        """Encode ``frames`` (uint8 (H, W, 3) RGB, any iterable) as ``{p:03d}/{sequence}/cam_{serial}.mp4``."""
        self._check_open()
        entry = catalogue.submission_entry(participant_id, sequence_name, serial)
        iterator = iter(frames)
        first = next(iterator, None)
        if first is None:
            raise SubmissionError(f"No frames were given for {entry}.")
        self._check_frame(np.asarray(first), entry, 0)
        self._validate_video(participant_id, sequence_name, serial)
        if entry in self._entries:
            raise SubmissionError(f"{entry} was already added to {self._zip_path}; add each video once.")
        self._wait_for_slot()
        source = _StreamedVideo(entry)
        self._sources.append(source)
        path = self._folder / f"{len(self._entries):04d}.mp4"
        encoder = self._executor.submit(_encode_into_zip, source, path, self._settings, self._zipf, self._lock)
        try:
            source.put(np.asarray(first), encoder)
            for index, frame in enumerate(iterator, 1):
                frame = np.asarray(frame)
                self._check_frame(frame, entry, index)
                source.put(frame, encoder)
            source.finish(encoder)
        except BaseException:
            source.aborted.set()
            wait([encoder])
            self._sources.remove(source)
            raise
        self._entries.add(entry)
        self._pending.append(encoder)

    def close(self) -> None:
        """Finish every video and move the zip onto its name; on an error nothing replaces the old zip."""
        if not self._finalizer.alive:
            return
        try:
            for encoder in self._pending:
                encoder.result()
            self._executor.shutdown(wait=True)
            self._zipf.close()
            os.replace(self._partial, check_output_file(self._zip_path, "submission zip"))
        finally:
            self._finalizer()

    # ---------------------------------------------------------------- checks
    def _check_frame(self, frame: np.ndarray, entry: str, index: int) -> None:
        """The official writer's checks (of its first frame), as one sentence naming the video and frame."""
        expected = (self._height, self._width, 3)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise SubmissionError(f"Frame {index} of {entry} has shape {frame.shape}; all frames should have 3 channels.")
        if frame.dtype != np.uint8:
            raise SubmissionError(
                f"Frame {index} of {entry} has dtype {frame.dtype}; frames should be uint8 with values 0-255.")
        if frame.shape != expected:
            raise SubmissionError(
                f"Frame {index} of {entry} is {frame.shape[1]}x{frame.shape[0]}; all frames should be "
                f"{self._width}x{self._height} (width x height).")

    def _validate_video(self, participant_id: int, sequence_name: str, serial: str) -> None:
        raise NotImplementedError

    def _check_open(self) -> None:
        if not self._finalizer.alive:
            raise SubmissionError(f"The writer of {self._zip_path} is closed; open a new one.")
        for encoder in self._pending:
            if encoder.done() and encoder.exception() is not None:
                encoder.result()

    def _wait_for_slot(self) -> None:
        """Block until fewer than VIDEOS_IN_FLIGHT videos are encoding, raising the first failure."""
        while True:
            running = [encoder for encoder in self._pending if not encoder.done()]
            self._check_open()
            if len(running) < VIDEOS_IN_FLIGHT:
                return
            wait(running, return_when=FIRST_COMPLETED)


class NVSSubmissionDataWriter(VideoSubmissionDataWriter):
    """NVS submission zip: 1100x1604 at 73 fps, the hold-out cameras of the five sequences."""

    _benchmark = "nvs"

    def _validate_video(self, participant_id: int, sequence_name: str, serial: str) -> None:
        sequences = dict(catalogue.NVS_SEQUENCES)
        if participant_id not in sequences:
            raise SubmissionError(
                f"Invalid participant_id {shown(participant_id)}; it should be one of {list(sequences)}.")
        if sequence_name != sequences[participant_id]:
            raise SubmissionError(
                f"Invalid sequence name {shown(sequence_name)}; participant {participant_id} has "
                f"{sequences[participant_id]}.")
        if serial not in catalogue.NVS_HOLD_OUT_SERIALS:
            raise SubmissionError(
                f"Invalid serial {shown(serial)}; only the hold-out serials {list(catalogue.NVS_HOLD_OUT_SERIALS)} "
                "should be submitted.")


class MonoFlameAvatarSubmissionDataWriter(VideoSubmissionDataWriter):
    """Mono FLAME avatar submission zip: 512x512 at 24.3 fps, four cameras of the test sequences."""

    _benchmark = "mono_flame_avatar"

    def _validate_video(self, participant_id: int, sequence_name: str, serial: str) -> None:
        if participant_id not in catalogue.MONO_PARTICIPANTS:
            raise SubmissionError(
                f"Invalid participant_id {shown(participant_id)}; it should be one of {list(catalogue.MONO_PARTICIPANTS)}.")
        if sequence_name not in catalogue.MONO_TEST_SEQUENCES:
            raise SubmissionError(
                f"Invalid sequence name {shown(sequence_name)}; only the hold-out sequences "
                f"{list(catalogue.MONO_TEST_SEQUENCES)} should be submitted.")
        serials = catalogue.submission_serials("mono_flame_avatar")
        if serial not in serials:
            raise SubmissionError(
                f"Invalid serial {shown(serial)}; only the train serial {catalogue.MONO_TRAIN_SERIAL} and the "
                f"hold-out serials {list(catalogue.MONO_HOLD_OUT_SERIALS)} should be submitted.")


class VideoSubmissionDataReader:
    """Reads and validates a submission zip offline, with frame counts from a fetched folder or a store.

    Give ``root`` (the fetched benchmark folder), ``store`` (a converted store) or ``frame_counts``
    ((participant, sequence) -> n); without them NVS uses the catalogue's counts. The official reader
    downloads metadata.json from the server instead.
    """

    _benchmark = "nvs"

    def __init__(self, zip_path: str | os.PathLike, *, root=None, store=None, frame_counts=None) -> None:
        self._zip_path = Path(zip_path)
        self._counts = {"root": root, "store": store, "frame_counts": frame_counts}
        open_zip(self._zip_path).close()  # a missing or broken zip is a SubmissionError now, as the official opens it

    def get_video_path(self, participant_id: int, sequence_name: str, serial: str) -> str:
        return catalogue.submission_entry(participant_id, sequence_name, serial)

    def list_expected_files(self) -> List[str]:
        return [video.entry for video in self._spec().videos]

    def list_expected_video_lengths(self) -> Dict[str, int]:
        return {video.entry: video.n_frames for video in self._spec().videos}

    def get_expected_resolution(self):
        spec = catalogue.SPECS[self._benchmark]
        return spec.width, spec.height

    def get_file_overview(self) -> Dict[int, Dict[str, List[str]]]:
        """participant -> sequence -> serials of the videos in the zip."""
        overview: Dict[int, Dict[str, List[str]]] = {}
        with open_zip(self._zip_path) as archive:
            names = archive.namelist()
        for video in self._spec().videos:
            if video.entry in names:
                overview.setdefault(video.participant, {}).setdefault(video.sequence, []).append(video.serial)
        return overview

    def validate_submission(self) -> Dict[str, List]:
        """The official result: ``missing_files``, ``wrong_frame_counts`` [(file, found, expected)] and
        ``wrong_resolutions`` [(file, (w, h), (W, H))], each only when not empty; plus ``unreadable_files``
        [(file, reason)] for videos that cannot be decoded (the official reader fails on those)."""
        spec = self._spec()
        with open_zip(self._zip_path) as archive:
            names = set(archive.namelist())
        issues: Dict[str, List] = {}
        missing = [video.entry for video in spec.videos if video.entry not in names]
        counts = spec.by_entry()
        wrong_counts, wrong_sizes, unreadable = [], [], []
        for found in measure_videos(self._zip_path, spec):
            if found.problem is not None:
                unreadable.append((found.entry, found.problem))
                continue
            if found.n_frames != counts[found.entry].n_frames:
                wrong_counts.append((found.entry, found.n_frames, counts[found.entry].n_frames))
            if (found.width, found.height) != (spec.width, spec.height):
                wrong_sizes.append((found.entry, (found.width, found.height), (spec.width, spec.height)))
        for key, values in (("missing_files", missing), ("wrong_frame_counts", wrong_counts),
                            ("wrong_resolutions", wrong_sizes), ("unreadable_files", unreadable)):
            if values:
                issues[key] = values
        return issues

    def report(self):
        """This project's full validation (codec, rate, every frame decodes, zip safety) as a ValidationReport."""
        return validate_submission(self._zip_path, spec=self._spec())

    def _spec(self):
        return expected_submission(self._benchmark, partial=True, **self._counts)


class NVSSubmissionDataReader(VideoSubmissionDataReader):
    _benchmark = "nvs"

    def is_complete(self, participant_id: int, sequence_name: str) -> bool:
        serials = self.get_file_overview().get(participant_id, {}).get(sequence_name, [])
        return all(serial in serials for serial in catalogue.NVS_HOLD_OUT_SERIALS)


class MonoFlameAvatarSubmissionDataReader(VideoSubmissionDataReader):
    _benchmark = "mono_flame_avatar"

    def is_complete(self, participant_id: Optional[int] = None) -> bool:
        overview = self.get_file_overview()
        participants = catalogue.MONO_PARTICIPANTS if participant_id is None else (participant_id,)
        return all(
            serial in overview.get(p, {}).get(s, [])
            for p in participants for s in catalogue.MONO_TEST_SEQUENCES
            for serial in catalogue.submission_serials("mono_flame_avatar"))
