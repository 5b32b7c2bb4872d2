"""Check a submission zip the way the benchmark server will, reporting every problem at once.

Checks: the zip starts with its first entry, each required video is present (unless partial), stored or
deflated, nothing unexpected or unsafe is inside, and each video is an MP4 (ISO base media, as the official
writer produces) holding H.264 yuv420p at the benchmark's size and rate, of which every frame decodes and
exactly the metadata's frame count is decoded.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from .. import catalogue
from ..errors import InputDataError, SubmissionError
from ..progress import LockedProgress, Progress, set_total
from ..video import DecodeCount, VideoInfo, count_decodable_frames, probe
from ..units import listed
from .expected import CODEC, PIX_FMT, ExpectedVideo, FrameCounts, SubmissionSpec, expected_submission
from .zipsafety import (
    MAX_ENTRIES, copy_entry, method_problem, open_zip, prefix_problem, shown, size_problem, unsafe_entry,
)

FPS_TOLERANCE = 0.01
# ftyp major brands of ISO base media (MP4) files as FFmpeg's mp4 muxer and other MP4 writers set them;
# QuickTime's 'qt  ' (.mov) and 3GPP/Apple brands are other formats the server's reader may refuse.
MP4_BRANDS = frozenset({b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1"})
_MATROSKA_MAGIC = b"\x1a\x45\xdf\xa3"


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of validating one zip: the problems found (none means valid) and the videos that passed."""

    path: Path
    benchmark: str
    problems: tuple[str, ...]
    valid_videos: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_invalid(self) -> None:
        """Raise a SubmissionError naming the zip and listing every problem."""
        if self.problems:
            raise SubmissionError(
                f"{self.path} is not a valid {self.benchmark} submission; {len(self.problems)} problem(s): "
                + " ".join(self.problems)
            )


def validate_submission(
    path: str | os.PathLike,
    benchmark: str | None = None,
    *,
    root: str | os.PathLike | None = None,
    store=None,
    frame_counts: FrameCounts | None = None,
    resolution: tuple[int, int] | None = None,
    partial: bool = False,
    spec: SubmissionSpec | None = None,
    progress: Progress | None = None,
    scratch_dir: str | os.PathLike | None = None,
    workers: int = 1,
) -> ValidationReport:
    """Validate the zip at ``path`` against a benchmark's expectations and return the report.

    Frame counts come from ``root`` (fetched folder), ``store`` (converted store), ``frame_counts`` or,
    for NVS, the catalogue; or pass a ready ``spec``. With ``partial`` missing videos are allowed.
    The zip is never extracted: each expected entry is copied, size-capped, into a private temp file
    (in ``scratch_dir``, default the system's temp folder). Videos are checked on ``workers`` threads,
    each with its own handle on the zip and its own copy; the report lists problems in entry order.
    ``progress`` is told the number of videos (``set_total``) and called with 1 after each is checked.
    """
    if spec is None:
        if benchmark is None:
            raise SubmissionError("Say which benchmark the submission is for (nvs or mono_flame_avatar).")
        spec = expected_submission(
            benchmark, root=root, store=store, frame_counts=frame_counts, resolution=resolution, partial=partial
        )
    path = Path(path)
    try:
        archive = open_zip(path)
    except SubmissionError as error:
        return ValidationReport(path, spec.benchmark, (str(error),), ())
    with archive:
        problems, to_check = _check_listing(archive.infolist(), spec, partial)
        prefix = prefix_problem(path, archive.infolist())
        if prefix is not None:
            problems.insert(0, prefix)
        set_total(progress, len(to_check))
        found = _check_videos(path, to_check, spec, scratch_dir, workers, LockedProgress(progress))
    valid = [info.filename for info, video_problems in zip(to_check, found) if not video_problems]
    problems.extend(problem for video_problems in found for problem in video_problems)
    return ValidationReport(path, spec.benchmark, tuple(problems), tuple(valid))


def _check_videos(
    path: Path, infos: list[zipfile.ZipInfo], spec: SubmissionSpec, scratch_dir, workers: int, progress: Progress
) -> list[list[str]]:
    """The problems of each expected video, in entry order, checked on ``workers`` threads."""
    expected = spec.by_entry()
    with tempfile.TemporaryDirectory(prefix="nersemble-validate-", dir=scratch_dir) as scratch:

        def check(index: int, info: zipfile.ZipInfo) -> list[str]:
            copy = Path(scratch) / f"{index}.mp4"
            with open_zip(path) as archive:
                found = _check_video(archive, info, expected[info.filename], spec, copy)
            copy.unlink(missing_ok=True)  # at most one copy per thread on disk
            progress(1)
            return found

        if workers <= 1 or len(infos) <= 1:
            return [check(index, info) for index, info in enumerate(infos)]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="validate") as pool:
            return list(pool.map(check, range(len(infos)), infos))


def _check_listing(
    infos: list[zipfile.ZipInfo], spec: SubmissionSpec, partial: bool
) -> tuple[list[str], list[zipfile.ZipInfo]]:
    """Problems with the entry list (names, duplicates, missing, unexpected) and the entries to open."""
    if len(infos) > MAX_ENTRIES:
        refusal = f"The zip holds {len(infos)} entries; a submission has {len(spec.videos)}, refusing to look further."
        return [refusal], []
    expected = spec.by_entry()
    folders = {entry.rsplit("/", i)[0] + "/" for entry in expected for i in (1, 2)}
    counts = Counter(info.filename for info in infos)
    problems = [f"Entry {shown(name)} appears {n} times." for name, n in counts.items() if n > 1]
    unexpected: list[str] = []
    to_check: list[zipfile.ZipInfo] = []
    for info in infos:
        reason = unsafe_entry(info)
        if reason is not None:
            problems.append(reason)
        elif info.filename in expected:
            if counts[info.filename] == 1:
                to_check.append(info)
        elif not (info.is_dir() and info.filename in folders) and counts[info.filename] == 1:
            unexpected.append(shown(info.filename))
    other = _benchmark_of_entries([info.filename for info in infos if info.filename not in expected], spec.benchmark)
    if unexpected and other is not None:
        problems.append(
            f"{len(unexpected)} entr{'y' if len(unexpected) == 1 else 'ies'} ({listed(unexpected)}) are {other} "
            f"videos, not {spec.benchmark} ones; validate with --benchmark {other}."
        )
    elif unexpected:
        problems.append(
            f"{len(unexpected)} unexpected entr{'y' if len(unexpected) == 1 else 'ies'} ({listed(unexpected)}); "
            "a submission holds only {participant:03d}/{sequence}/cam_{serial}.mp4 videos."
        )
    missing = [entry for entry in expected if entry not in counts]
    if missing and not partial:
        problems.append(f"{len(missing)} of {len(expected)} required videos are missing ({listed(missing)}).")
    elif partial and len(missing) == len(expected) and not problems:
        problems.append(f"The zip holds none of the {len(expected)} {spec.benchmark} videos.")
    return problems, to_check


def _benchmark_of_entries(names: list[str], benchmark: str) -> str | None:
    """The other benchmark whose submission holds every one of ``names`` (files only), if there is one."""
    files = [name for name in names if not name.endswith("/")]
    for other in catalogue.BENCHMARKS:
        entries = {catalogue.submission_entry(p, s, serial) for p, s in catalogue.submission_sequences(other)
                   for serial in catalogue.submission_serials(other)}
        if other != benchmark and files and all(name in entries for name in files):
            return other
    return None


def _check_video(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, video: ExpectedVideo, spec: SubmissionSpec, scratch: Path
) -> list[str]:
    """Problems of one expected video: safe size, then codec, pixel format, size, rate and frame count."""
    name = info.filename
    problem, found, count = _read_video(archive, info, video, spec, scratch)
    if problem is not None:
        return [problem]
    problems = []
    if found.codec != CODEC:
        problems.append(f"{name} is encoded with {found.codec}; expected {CODEC} (H.264).")
    if found.pix_fmt != PIX_FMT:
        problems.append(f"{name} has pixel format {found.pix_fmt}; expected {PIX_FMT}.")
    if (found.width, found.height) != (spec.width, spec.height):
        problems.append(f"{name} is {found.width}x{found.height}; expected {spec.width}x{spec.height}.")
    if abs(found.fps - spec.fps) > FPS_TOLERANCE:
        problems.append(f"{name} plays at {found.fps:g} fps; expected {spec.fps:g}.")
    problems.extend(decode_problems(name, count, found.n_frames, video.n_frames))
    return problems


def _read_video(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, video: ExpectedVideo, spec: SubmissionSpec, scratch: Path
) -> tuple[str | None, VideoInfo | None, DecodeCount | None]:
    """Copy one entry (size-capped) to ``scratch``, probe it and decode every frame: (problem, info, count)."""
    name = info.filename
    if video.n_frames is None:
        return f"{name} is in the zip but the frame count of {video.participant:03d}/{video.sequence} is unknown.", None, None
    cap = max_video_bytes(video.n_frames, spec.width, spec.height)
    problem = method_problem(info) or size_problem(info, cap)
    if problem is None:
        with open(scratch, "wb") as target:
            problem = copy_entry(archive, info, target, cap)
    if problem is None:
        problem = container_problem(name, scratch)
    if problem is not None:
        return problem, None, None
    try:
        return None, probe(scratch), count_decodable_frames(scratch)
    except InputDataError as error:
        cause = error.__cause__ or error
        reason = getattr(cause, "strerror", None) or "no frame could be decoded"  # FFmpeg's reason, not our temp path
        return f"{name} is not a readable video ({reason}).", None, None


@dataclass(frozen=True)
class VideoMeasurement:
    """One expected video found in a zip: its frame size and decoded frame count, or why it is unreadable."""

    entry: str
    width: int | None = None
    height: int | None = None
    n_frames: int | None = None
    problem: str | None = None


def measure_videos(
    path: str | os.PathLike, spec: SubmissionSpec, *, scratch_dir: str | os.PathLike | None = None
) -> list[VideoMeasurement]:
    """Frame size and decoded frame count of each expected video present (once, safely named) in the zip."""
    expected = spec.by_entry()
    measurements = []
    with open_zip(path) as archive:
        infos = archive.infolist()
        counts = Counter(info.filename for info in infos)
        with tempfile.TemporaryDirectory(prefix="nersemble-validate-", dir=scratch_dir) as scratch:
            for info in infos:
                if info.filename not in expected or counts[info.filename] > 1 or unsafe_entry(info) is not None:
                    continue
                problem, found, count = _read_video(
                    archive, info, expected[info.filename], spec, Path(scratch) / "entry.mp4")
                if problem is not None:
                    measurements.append(VideoMeasurement(info.filename, problem=problem))
                else:
                    measurements.append(VideoMeasurement(info.filename, found.width, found.height, count.decoded))
    return measurements


def container_problem(name: str, path: Path) -> str | None:
    """Refuse a video that is not an MP4 file (ISO base media with an MP4 brand), whatever its name says."""
    with open(path, "rb") as file:
        head = file.read(12)
    if head[4:8] == b"ftyp" and head[8:12] in MP4_BRANDS:
        return None
    if head[4:8] == b"ftyp" and head[8:12] == b"qt  ":
        found = "a QuickTime .mov file"
    elif head[4:8] == b"ftyp":
        found = f"an ISO media file of brand {head[8:12].decode('latin-1')!r}"
    elif head[:4] == _MATROSKA_MAGIC:
        found = "a Matroska/WebM file"
    else:
        return f"{name} is not a readable video (it does not start with the 'ftyp' box of an MP4 file)."
    return f"{name} is {found}; the benchmark takes MP4 videos (brand isom/mp41/mp42) as the official writer makes."


def decode_problems(name: str, count: DecodeCount, header_frames: int, expected: int) -> list[str]:
    """Problems found by decoding every frame: a frame of another size or pixel format than the header's, frames
    that fail, a decoded count unlike the metadata's or header's. The rule evaluate applies to a zip's videos too."""
    problems = []
    if count.changed is not None:
        index, why = count.changed
        problems.append(f"{name} is corrupt at frame {index} ({why}).")
    if count.failed:
        shown_indices = ", ".join(map(str, count.failed[:10])) + (", ..." if len(count.failed) > 10 else "")
        problems.append(
            f"{name}: {len(count.failed)} frame(s) cannot be decoded (frame {shown_indices}, in file order from 0)."
        )
    if count.decoded != expected:
        header = f" (its header claims {header_frames})" if header_frames != count.decoded else ""
        problems.append(f"{name} has {count.decoded} frames{header}; the metadata expects {expected}.")
    elif header_frames != count.decoded:
        problems.append(f"{name}'s header claims {header_frames} frames but {count.decoded} decode.")
    return problems


def max_video_bytes(n_frames: int, width: int, height: int) -> int:
    """Upper bound on a sane mp4 of this shape: raw yuv420p size plus a margin (H.264 never needs more)."""
    return int(n_frames * width * height * 1.5 * 1.25) + 2**20
