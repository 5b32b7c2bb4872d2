"""Check a submission zip the way the benchmark server will, reporting every problem at once.

Checks: each required video is present (unless partial), nothing unexpected or unsafe is inside, and each
video is H.264 yuv420p at the benchmark's size and rate with exactly the metadata's frame count.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from ..errors import InputDataError, SubmissionError
from ..progress import Progress, advance, set_total
from ..video import iter_frames, probe
from .expected import CODEC, PIX_FMT, ExpectedVideo, FrameCounts, SubmissionSpec, expected_submission, listed
from .zipsafety import MAX_ENTRIES, copy_entry, open_zip, shown, size_problem, unsafe_entry

FPS_TOLERANCE = 0.01


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
) -> ValidationReport:
    """Validate the zip at ``path`` against a benchmark's expectations and return the report.

    Frame counts come from ``root`` (fetched folder), ``store`` (converted store), ``frame_counts`` or,
    for NVS, the catalogue; or pass a ready ``spec``. With ``partial`` missing videos are allowed.
    The zip is never extracted: each expected entry is copied, size-capped, into a private temp file
    (in ``scratch_dir``, default the system's temp folder).
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
        valid: list[str] = []
        with tempfile.TemporaryDirectory(prefix="nersemble-validate-", dir=scratch_dir) as scratch:
            set_total(progress, len(to_check))
            for info in to_check:
                found = _check_video(archive, info, spec.by_entry()[info.filename], spec, Path(scratch) / "entry.mp4")
                problems.extend(found)
                if not found:
                    valid.append(info.filename)
                advance(progress, 1)
    return ValidationReport(path, spec.benchmark, tuple(problems), tuple(valid))


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
    if unexpected:
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


def _check_video(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, video: ExpectedVideo, spec: SubmissionSpec, scratch: Path
) -> list[str]:
    """Problems of one expected video: safe size, then codec, pixel format, size, rate and frame count."""
    name = info.filename
    if video.n_frames is None:
        return [f"{name} is in the zip but the frame count of {video.participant:03d}/{video.sequence} is unknown."]
    cap = max_video_bytes(video.n_frames, spec.width, spec.height)
    problem = size_problem(info, cap)
    if problem is None:
        with open(scratch, "wb") as target:
            problem = copy_entry(archive, info, target, cap)
    if problem is not None:
        return [problem]
    try:
        found = probe(scratch)
        next(iter_frames(scratch, stop=1))
    except (InputDataError, StopIteration) as error:
        cause = error.__cause__ or error
        reason = getattr(cause, "strerror", None) or "no frame could be decoded"  # FFmpeg's reason, not our temp path
        return [f"{name} is not a readable video ({reason})."]
    problems = []
    if found.codec != CODEC:
        problems.append(f"{name} is encoded with {found.codec}; expected {CODEC} (H.264).")
    if found.pix_fmt != PIX_FMT:
        problems.append(f"{name} has pixel format {found.pix_fmt}; expected {PIX_FMT}.")
    if (found.width, found.height) != (spec.width, spec.height):
        problems.append(f"{name} is {found.width}x{found.height}; expected {spec.width}x{spec.height}.")
    if abs(found.fps - spec.fps) > FPS_TOLERANCE:
        problems.append(f"{name} plays at {found.fps:g} fps; expected {spec.fps:g}.")
    if found.n_frames != video.n_frames:
        problems.append(f"{name} has {found.n_frames} frames; the metadata expects {video.n_frames}.")
    return problems


def max_video_bytes(n_frames: int, width: int, height: int) -> int:
    """Upper bound on a sane mp4 of this shape: raw yuv420p size plus a margin (H.264 never needs more)."""
    return int(n_frames * width * height * 1.5 * 1.25) + 2**20
