"""validate_submission: every problem reported at once, and hostile zips refused without extracting them."""

from __future__ import annotations

import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import ProgressRecorder
from nersemble_zarr import catalogue
from nersemble_zarr.errors import SubmissionError
from nersemble_zarr.submission import export_submission, validate_submission
from nersemble_zarr.synthetic import SyntheticConfig, render_views
from nersemble_zarr.video import VideoWriter

CONFIG = SyntheticConfig(scale=0.1, n_frames=4)
WIDTH, HEIGHT = CONFIG.frame_size("nvs")  # 110 x 160
COUNTS = {(p, s): 4 for p, s in catalogue.submission_sequences("nvs")}
OPTIONS = {"frame_counts": COUNTS, "resolution": (WIDTH, HEIGHT)}
ENTRIES = [
    catalogue.submission_entry(p, s, serial)
    for p, s in catalogue.submission_sequences("nvs")
    for serial in catalogue.submission_serials("nvs")
]
FIRST = ENTRIES[0]  # 388/GLASSES/cam_222200046.mp4


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, bytes]:
    """The 15 valid mp4 files of a complete tiny NVS submission, by entry name."""
    predictions = {}
    for p, s in catalogue.submission_sequences("nvs"):
        for serial in catalogue.submission_serials("nvs"):
            predictions[p, s, serial] = np.stack([rgb for rgb, _ in render_views(CONFIG, "nvs", p, s, serial)])
    path = tmp_path_factory.mktemp("valid") / "submission.zip"
    export_submission(predictions, path, "nvs", **OPTIONS)
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_zip(path: Path, entries: dict[str, bytes] | list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    items = entries.items() if isinstance(entries, dict) else entries
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in items:
            archive.writestr(name, data)
    return path


def encoded(
    path: Path, *, frames: int = 4, width: int = WIDTH, height: int = HEIGHT, fps: float = 73.0, **codec
) -> bytes:
    """An mp4 of smooth moving content with the given properties."""
    y, x = np.mgrid[0:height, 0:width]
    with VideoWriter(path, width=width, height=height, fps=fps, **codec) as writer:
        for t in range(frames):
            writer.write(np.stack([(x * 2 + t * 9) % 256, (y * 2) % 256, (x + y + t) % 256], -1).astype(np.uint8))
    return path.read_bytes()


def patch_central_record(path: Path, name: str, offset: int, fmt: str, value: int) -> None:
    """Overwrite one field of an entry's central directory record (offsets as in the zip specification)."""
    with zipfile.ZipFile(path) as archive:
        position = archive.start_dir
    data = bytearray(path.read_bytes())
    while data[position : position + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, position + 28)
        if data[position + 46 : position + 46 + name_length].decode() == name:
            struct.pack_into(fmt, data, position + offset, value)
            path.write_bytes(bytes(data))
            return
        position += 46 + name_length + extra_length + comment_length
    raise AssertionError(f"{name} not in the central directory")


def test_a_complete_submission_is_valid(tmp_path, videos):
    report = validate_submission(write_zip(tmp_path / "s.zip", videos), "nvs", **OPTIONS)
    assert report.ok and report.valid_videos == tuple(ENTRIES)
    report.raise_if_invalid()


def test_every_problem_is_reported_at_once(tmp_path, videos):
    entries = dict(videos)
    del entries[ENTRIES[14]]
    entries[ENTRIES[1]] = encoded(tmp_path / "short.mp4", frames=3)
    entries[ENTRIES[2]] = encoded(tmp_path / "small.mp4", width=64, height=96)
    entries[ENTRIES[3]] = encoded(tmp_path / "slow.mp4", fps=30)
    entries[ENTRIES[4]] = encoded(tmp_path / "444.mp4", pix_fmt="yuv444p")
    entries[ENTRIES[5]] = encoded(tmp_path / "mpeg4.mp4", codec="mpeg4")
    entries[ENTRIES[6]] = b"\x00\x00\x00\x18ftypmp42 but not a video at all"
    entries["readme.txt"] = b"hello"
    entries["388/GLASSES/cam_222200042.mp4"] = videos[FIRST]  # a train camera
    report = validate_submission(write_zip(tmp_path / "s.zip", entries), "nvs", **OPTIONS)

    expected = [
        f"{ENTRIES[1]} has 3 frames; the metadata expects 4.",
        f"{ENTRIES[2]} is 64x96; expected 110x160.",
        f"{ENTRIES[3]} plays at 30 fps; expected 73.",
        f"{ENTRIES[4]} has pixel format yuv444p; expected yuv420p.",
        f"{ENTRIES[5]} is encoded with mpeg4; expected h264 (H.264).",
        f"{ENTRIES[6]} is not a readable video",
        "2 unexpected entries ('readme.txt', '388/GLASSES/cam_222200042.mp4')",
        f"1 of 15 required videos are missing ({ENTRIES[14]}).",
    ]
    for sentence in expected:
        assert sum(sentence in problem for problem in report.problems) == 1, sentence
    assert len(report.problems) == len(expected)
    assert report.valid_videos == tuple(ENTRIES[:1] + ENTRIES[7:14])
    with pytest.raises(SubmissionError, match=r"s.zip is not a valid nvs submission; 8 problem\(s\)"):
        report.raise_if_invalid()
    partial = validate_submission(tmp_path / "s.zip", "nvs", partial=True, **OPTIONS)
    assert partial.problems == tuple(p for p in report.problems if "required videos are missing" not in p)
    progress = ProgressRecorder()
    on_threads = validate_submission(tmp_path / "s.zip", "nvs", workers=4, progress=progress, **OPTIONS)
    assert on_threads == report  # the same problems in the same order, checked four videos at a time
    assert progress.totals == [14] and progress.done == 14


@pytest.mark.parametrize(
    "name, message",
    [
        ("../../evil.mp4", "climbs out of its folder"),
        ("388/GLASSES/../../../evil.mp4", "climbs out of its folder"),
        ("/tmp/evil.mp4", "is an absolute path"),
        ("C:/evil.mp4", "is an absolute path"),
        ("388\\GLASSES\\cam_222200046.mp4", "uses backslashes"),
        ("388/GLASSES/cam\n222200046.mp4", "has control characters"),
    ],
)
def test_unsafe_names_are_refused_and_nothing_is_extracted(tmp_path, videos, monkeypatch, name, message):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    path = write_zip(tmp_path / "s.zip", [(FIRST, videos[FIRST]), (name, videos[FIRST])])
    report = validate_submission(path, "nvs", partial=True, **OPTIONS)
    (problem,) = report.problems
    assert problem.startswith(f"Entry {name!r} ") and message in problem
    assert report.valid_videos == (FIRST,)
    assert not list(tmp_path.rglob("evil.mp4")) and not list(work.iterdir())


def test_symlinks_and_duplicates_are_refused(tmp_path, videos):
    link = zipfile.ZipInfo(ENTRIES[1])
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = write_zip(tmp_path / "s.zip", [(FIRST, videos[FIRST]), (FIRST, videos[FIRST]), (link, b"/etc/passwd")])
    report = validate_submission(path, "nvs", partial=True, **OPTIONS)
    assert report.problems == (
        f"Entry '{FIRST}' appears 2 times.",
        f"Entry '{ENTRIES[1]}' is a symbolic link.",
    )
    assert report.valid_videos == ()


def test_declared_sizes_are_checked_before_reading(tmp_path, videos):
    path = write_zip(tmp_path / "s.zip", {FIRST: videos[FIRST], ENTRIES[1]: videos[ENTRIES[1]]})
    patch_central_record(path, FIRST, 24, "<I", 3_000_000_000)  # uncompressed size
    patch_central_record(path, ENTRIES[1], 8, "<H", 0x1)  # "encrypted" flag
    problems = validate_submission(path, "nvs", partial=True, **OPTIONS).problems
    assert problems[0].startswith(f"Entry '{FIRST}' declares 3000000000 bytes, more than the ")
    assert problems[1] == f"Entry '{ENTRIES[1]}' is encrypted."


def test_zip_bombs_are_refused_without_inflating(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(FIRST, bytes(200 * 2**20))
    assert path.stat().st_size < 2**20
    report = validate_submission(path, "nvs", partial=True)  # real size and catalogue frame counts
    assert len(report.problems) == 1 and "-fold; refusing a likely zip bomb" in report.problems[0]


def test_damaged_entry_data_is_reported(tmp_path, videos):
    path = write_zip(tmp_path / "s.zip", {FIRST: videos[FIRST]})
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        start = archive.getinfo(FIRST).header_offset + 30 + len(FIRST)
    data[start + len(videos[FIRST]) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    (problem,) = validate_submission(path, "nvs", partial=True, **OPTIONS).problems
    assert problem.startswith(f"Entry '{FIRST}' cannot be read (BadZipFile: Bad CRC-32")


@pytest.mark.parametrize("content", ["random", "truncated", "empty", "missing", "folder"])
def test_files_that_are_no_zip_give_one_problem(tmp_path, videos, content):
    path = tmp_path / "s.zip"
    if content == "random":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif content == "truncated":
        full = write_zip(tmp_path / "full.zip", videos).read_bytes()
        path.write_bytes(full[: len(full) - 40])
    elif content == "empty":
        path.write_bytes(b"")
    elif content == "folder":
        path.mkdir()
    report = validate_submission(path, "nvs", **OPTIONS)
    assert len(report.problems) == 1 and str(path) in report.problems[0]
    expected = {"missing": "does not exist or is not a file", "folder": "is a folder; give the zip file"}.get(
        content, "is not a zip file, or it is truncated")
    assert expected in report.problems[0]


def test_parent_folder_entries_are_allowed_but_other_folders_are_not(tmp_path, videos):
    entries = [("388/", b""), ("388/GLASSES/", b""), ("extras/", b"")] + list(videos.items())
    report = validate_submission(write_zip(tmp_path / "s.zip", entries), "nvs", **OPTIONS)
    assert report.problems == ("1 unexpected entry ('extras/'); a submission holds only "
                               "{participant:03d}/{sequence}/cam_{serial}.mp4 videos.",)


def test_too_many_entries_are_not_listed(tmp_path):
    path = write_zip(tmp_path / "s.zip", [(f"junk/{i}", b"") for i in range(10_001)])
    (problem,) = validate_submission(path, "nvs", **OPTIONS).problems
    assert problem == "The zip holds 10001 entries; a submission has 15, refusing to look further."


def test_partial_zip_without_any_video_is_invalid(tmp_path):
    report = validate_submission(write_zip(tmp_path / "s.zip", {}), "nvs", partial=True, **OPTIONS)
    assert report.problems == ("The zip holds none of the 15 nvs videos.",)


def test_unknown_frame_counts_are_reported_for_present_videos(tmp_path, videos, synthetic_root):
    # The tiny synthetic metadata knows participant 388 only (6 frames); 422's video cannot be checked.
    path = write_zip(tmp_path / "s.zip", {ENTRIES[0]: videos[ENTRIES[0]], ENTRIES[3]: videos[ENTRIES[3]]})
    report = validate_submission(path, "nvs", root=synthetic_root, partial=True, resolution=(WIDTH, HEIGHT))
    assert report.problems == (
        f"{ENTRIES[0]} has 4 frames; the metadata expects 6.",
        f"{ENTRIES[3]} is in the zip but the frame count of 422/EXP-2-eyes is unknown.",
    )
