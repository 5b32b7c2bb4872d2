"""Hostile outputs, submissions and stores through the CLI (issue 11, items 4, 5 and 8).

- Outputs: every command that writes a file or folder refuses an output path that exists and is not what it
  would write (a FIFO, a symbolic link to a file outside, a file where a folder goes), with or without
  --overwrite: one ``Error:`` line naming the path, the FIFO still a FIFO, the outside file unchanged, nothing new.
- Submissions: a Matroska file named .mp4, a QuickTime .mov, an mp4 of which only frame 0 decodes (its header
  still counts every frame), an LZMA-compressed entry and a zip with junk before its first entry are invalid.
- Stores: a ``serial`` coordinate holding ``../../x`` or NaN timesteps are refused by export-frames before anything
  is written.

The FIFOs here are made with os.mkfifo in the test's own folder (never /dev/null), and nothing opens them.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import zarr

from helpers import file_digest, predictions_dataset, run_cli, write_predictions
from nersemble_zarr import catalogue, schema
from nersemble_zarr.submission import validate_submission
from nersemble_zarr.synthetic import render_views
from nersemble_zarr.video import count_decodable_frames

SEQUENCE = (388, "GLASSES")
ENTRIES = [catalogue.submission_entry(*SEQUENCE, serial) for serial in catalogue.NVS_HOLD_OUT_SERIALS]
OUTSIDE_TEXT = b"the user's own file, outside the output folder\n"


# ------------------------------------------------------------------------------------------------------ helpers
def snapshot(folder: Path) -> dict[str, str]:
    """Every entry below ``folder`` by relative path: 'fifo', 'dir', 'link -> target' or the file's sha1."""
    found = {}
    for path in sorted(folder.rglob("*")):
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            kind = f"link -> {os.readlink(path)}"
        elif stat.S_ISFIFO(mode):
            kind = "fifo"
        elif stat.S_ISDIR(mode):
            kind = "dir"
        else:
            kind = file_digest(path)
        found[path.relative_to(folder).as_posix()] = kind
    return found


def assert_one_error_line(result, exit_code: int, *fragments: str) -> str:
    """The command failed with ``exit_code`` and one final ``Error:`` line holding every fragment."""
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == exit_code, result.output
    assert lines and lines[-1].startswith("Error: "), result.output
    assert sum(line.startswith("Error: ") for line in lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[-1], result.output
    return lines[-1]


def encode(path: Path, frames: np.ndarray, fps: float, container_format: str = "mp4", **options: str) -> bytes:
    """H.264 yuv420p crf 14 of ``frames`` (T, H, W, 3) in the given container, muxed by PyAV (FFmpeg)."""
    with av.open(str(path), mode="w", format=container_format, options=options) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "14"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path.read_bytes()


def damaged(data: bytes, path: Path, frames: list[int]) -> bytes:
    """``data`` (an mp4) with the compressed bytes of the given frames (file order) zeroed; the header is intact."""
    path.write_bytes(data)
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    broken = bytearray(data)
    for index in frames:
        position, size = packets[index]
        broken[position : position + size] = bytes(size)
    return bytes(broken)


def rezip(source: Path, target: Path, replace: dict[str, bytes] | None = None, method: dict[str, int] | None = None,
          prefix: bytes = b"") -> Path:
    """A copy of the zip ``source`` with some entries replaced or compressed differently, after ``prefix``."""
    replace, method = replace or {}, method or {}
    with zipfile.ZipFile(source) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    built = target.with_suffix(".build")
    with zipfile.ZipFile(built, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, replace.get(name, data), compress_type=method.get(name, zipfile.ZIP_STORED))
    target.write_bytes(prefix + built.read_bytes())
    built.unlink()
    return target


# ----------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def frames(synthetic_config) -> dict[str, np.ndarray]:
    """The hold-out renders of NVS 388 by serial: (T, H, W, 3) uint8."""
    return {
        serial: np.stack([rgb for rgb, _ in render_views(synthetic_config, "nvs", *SEQUENCE, serial)])
        for serial in catalogue.NVS_HOLD_OUT_SERIALS
    }


@pytest.fixture(scope="module")
def predictions(tmp_path_factory, frames) -> Path:
    """A predictions store for NVS 388 holding the hold-out renders."""
    serials = list(frames)
    images = np.stack([frames[serial] for serial in serials])
    dataset = predictions_dataset(serials, images, timesteps=np.arange(images.shape[1]))
    path = tmp_path_factory.mktemp("hostile-predictions") / "pred.zarr"
    return write_predictions(path, {schema.sequence_group("nvs", *SEQUENCE): dataset})


def submission_options(synthetic_root: Path, synthetic_config) -> list[str]:
    width, height = synthetic_config.frame_size("nvs")
    return ["--benchmark", "nvs", "--root", synthetic_root, "--partial", "--resolution", f"{width}x{height}"]


@pytest.fixture(scope="module")
def valid_zip(tmp_path_factory, predictions, synthetic_root, synthetic_config) -> Path:
    """A valid partial NVS submission (the 3 videos of 388) written by export-submission."""
    path = tmp_path_factory.mktemp("hostile-zip") / "submission.zip"
    result = run_cli("export-submission", predictions, path, *submission_options(synthetic_root, synthetic_config))
    assert result.exit_code == 0, result.output
    return path


# ------------------------------------------------------------------------------------ item 4: hostile outputs
def plant(kind: str, path: Path, outside: Path) -> None:
    """Put a FIFO, or a symbolic link to the user's file ``outside``, where a command will write."""
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(outside)


def file_output_commands(ws: Path, predictions: Path, store: Path, options: list) -> dict[str, list]:
    """Commands writing one file, with ``{out}`` where the output path goes."""
    return {
        "export-submission": ["export-submission", predictions, "{out}", *options, "--overwrite"],
        "export-mesh": ["export-mesh", store, "-p", 393, "-s", "EXP-1-head", "-t", 0, "-o", "{out}",
                        "--flame-dir", ws / "no-flame"],
        "preview": ["preview", store, "-p", 388, "-o", "{out}"],
        "preview-rig": ["preview-rig", store, "-p", 388, "-o", "{out}"],
    }


FILE_NAMES = {"export-submission": "submission.zip", "export-mesh": "mesh.ply", "preview": "sheet.png",
              "preview-rig": "rig.png"}


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
@pytest.mark.parametrize("command", list(FILE_NAMES))
def test_a_file_output_that_is_a_fifo_or_a_link_is_refused(command, kind, tmp_path, predictions, converted,
                                                           synthetic_root, synthetic_config):
    ws, outside = tmp_path / "ws", tmp_path / "outside.txt"
    ws.mkdir()
    outside.write_bytes(OUTSIDE_TEXT)
    output = ws / FILE_NAMES[command]
    plant(kind, output, outside)
    before = snapshot(ws)
    args = file_output_commands(ws, predictions, converted, submission_options(synthetic_root, synthetic_config))
    result = run_cli(*[output if arg == "{out}" else arg for arg in args[command]])
    what = "a FIFO (named pipe)" if kind == "fifo" else "a symbolic link"
    assert_one_error_line(result, 2, str(output), f"exists and is {what}, not a regular file; refusing to replace it")
    assert snapshot(ws) == before
    assert outside.read_bytes() == OUTSIDE_TEXT


def folder_output_commands(root: Path, store: Path) -> dict[str, tuple[list, int, str]]:
    """Commands writing into a folder: arguments with ``{out}``, exit code and the start of the message."""
    return {
        "export-frames": (["export-frames", store, "{out}", "-p", 388], 2, "The output folder"),
        "demo": (["demo", "{out}"], 2, "The demo folder"),
        "synthetic": (["synthetic", "{out}"], 2, "The synthetic benchmark folder"),
        "convert": (["convert", root, "{out}", "-b", "nvs"], 1, "{out} exists and is not a zarr store"),
        "downsample": (["downsample", "{out}"], 1, "{out} is not a zarr store"),
        "meshes": (["meshes", "{out}"], 1, "{out} is not a zarr store"),
    }


@pytest.mark.parametrize("kind", ["fifo", "file-link"])
@pytest.mark.parametrize("command", ["export-frames", "demo", "synthetic", "convert", "downsample", "meshes"])
def test_a_folder_output_that_is_a_fifo_or_a_link_to_a_file_is_refused(command, kind, tmp_path, converted,
                                                                        synthetic_root):
    ws, outside = tmp_path / "ws", tmp_path / "outside.txt"
    ws.mkdir()
    outside.write_bytes(OUTSIDE_TEXT)
    output = ws / "out"
    plant("fifo" if kind == "fifo" else "symlink", output, outside)
    before = snapshot(ws)
    args, exit_code, start = folder_output_commands(synthetic_root, converted)[command]
    result = run_cli(*[output if arg == "{out}" else arg for arg in args])
    line = assert_one_error_line(result, exit_code, str(output))
    if kind == "fifo" or command not in ("export-frames", "demo"):  # click refuses a link to a file for these two
        assert line.startswith(f"Error: {start.format(out=output)}"), line
    if kind == "fifo" and command in ("export-frames", "demo", "synthetic"):
        assert f"{output} exists and is a FIFO (named pipe), not a folder; refusing to write there" in line
    assert snapshot(ws) == before
    assert outside.read_bytes() == OUTSIDE_TEXT


# ------------------------------------------------------------------------- item 5: submissions the server rejects
def test_decoding_counts_frames_and_names_the_ones_that_fail(tmp_path, frames, synthetic_config):
    data = encode(tmp_path / "good.mp4", frames[catalogue.NVS_HOLD_OUT_SERIALS[0]], 73.0)
    (tmp_path / "bad.mp4").write_bytes(damaged(data, tmp_path / "scratch.mp4", [3]))
    good, bad = count_decodable_frames(tmp_path / "good.mp4"), count_decodable_frames(tmp_path / "bad.mp4")
    assert (good.decoded, good.failed) == (len(frames[catalogue.NVS_HOLD_OUT_SERIALS[0]]), ())
    assert bad.failed == (3,) and bad.decoded == good.decoded - 1
    # The index (moov) first, the file cut in the middle of its last frame: the header still names every frame.
    whole = encode(tmp_path / "faststart.mp4", frames[catalogue.NVS_HOLD_OUT_SERIALS[0]], 73.0, movflags="+faststart")
    with av.open(str(tmp_path / "faststart.mp4")) as container:
        last = max((p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size)
    (tmp_path / "cut.mp4").write_bytes(whole[: last[0] + last[1] // 2])
    cut = count_decodable_frames(tmp_path / "cut.mp4")
    assert cut.decoded == good.decoded - 1


def crafted_cases(frames: dict[str, np.ndarray], valid_zip: Path, work: Path) -> dict[str, tuple[Path, str]]:
    """Zips the server may reject, each with the fragment its problem line must hold."""
    serial = catalogue.NVS_HOLD_OUT_SERIALS[0]
    entry = ENTRIES[0]
    with zipfile.ZipFile(valid_zip) as archive:
        good = archive.read(entry)
    n_frames = len(frames[serial])
    only_first = damaged(good, work / "scratch.mp4", list(range(1, n_frames)))
    return {
        "matroska named .mp4": (rezip(valid_zip, work / "mkv.zip", {entry: encode(
            work / "v.mkv", frames[serial], 73, "matroska")}), f"{entry} is a Matroska/WebM file"),
        "quicktime mov": (rezip(valid_zip, work / "mov.zip", {entry: encode(
            work / "v.mov", frames[serial], 73, "mov")}), f"{entry} is a QuickTime .mov file"),
        "only frame 0 decodes": (rezip(valid_zip, work / "broken.zip", {entry: only_first}),
                                 f"{entry}: {n_frames - 1} frame(s) cannot be decoded (frame 1, 2"),
        "lzma entry": (rezip(valid_zip, work / "lzma.zip", method={entry: zipfile.ZIP_LZMA}),
                       f"Entry '{entry}' is compressed with LZMA"),
        "junk before the first entry": (rezip(valid_zip, work / "junk.zip", prefix=b"JUNK" * 64),
                                        "has 256 bytes before its first entry"),
    }


CRAFTED = ["matroska named .mp4", "quicktime mov", "only frame 0 decodes", "lzma entry", "junk before the first entry"]


@pytest.mark.parametrize("case", CRAFTED)
def test_validate_submission_refuses_what_the_server_may_reject(case, tmp_path, frames, valid_zip, synthetic_root,
                                                                 synthetic_config):
    path, fragment = crafted_cases(frames, valid_zip, tmp_path)[case]
    before = snapshot(tmp_path)
    result = run_cli("validate-submission", path, *submission_options(synthetic_root, synthetic_config))
    assert_one_error_line(result, 1, f"{path} is not a valid nvs submission: ", "problem(s), listed above.")
    assert sum(fragment in line for line in result.stderr.splitlines() if line.startswith("- ")) == 1, result.output
    assert snapshot(tmp_path) == before


def test_the_damaged_video_still_claims_every_frame_in_its_header(tmp_path, frames, valid_zip, synthetic_root,
                                                                  synthetic_config):
    """The case the server-side reader misses: the header's count is right, only decoding finds the damage."""
    path, _ = crafted_cases(frames, valid_zip, tmp_path)["only frame 0 decodes"]
    width, height = synthetic_config.frame_size("nvs")
    report = validate_submission(path, "nvs", root=synthetic_root, partial=True, resolution=(width, height))
    n_frames = len(frames[catalogue.NVS_HOLD_OUT_SERIALS[0]])
    assert report.valid_videos == tuple(ENTRIES[1:])
    assert f"{ENTRIES[0]} has 1 frames (its header claims {n_frames}); the metadata expects {n_frames}." in \
        report.problems


def test_a_deflated_submission_is_valid(tmp_path, valid_zip, synthetic_root, synthetic_config):
    path = rezip(valid_zip, tmp_path / "deflated.zip", method={entry: zipfile.ZIP_DEFLATED for entry in ENTRIES})
    result = run_cli("validate-submission", path, *submission_options(synthetic_root, synthetic_config))
    assert result.exit_code == 0, result.output


# ----------------------------------------------------------------------------- item 8: store values as file names
def test_export_frames_refuses_a_serial_that_climbs_out(tmp_path, converted):
    """A camera with video whose serial is ``../../x``: its frames would be named images/00000_../../x.png."""
    store = Path(shutil.copytree(converted, tmp_path / "ws" / "bench.zarr"))
    group = zarr.open_group(store, path=schema.sequence_group("nvs", *SEQUENCE), mode="r+")
    values = group[schema.SERIAL][:]
    with_video = list(group.attrs["video_serials"])
    index = [str(value) for value in values].index(with_video[0])
    values[index] = "../../x"
    group[schema.SERIAL][:] = values
    group.attrs["video_serials"] = ["../../x", *with_video[1:]]
    out = tmp_path / "ws" / "export"
    before = snapshot(tmp_path)
    result = run_cli("export-frames", store, out, "-p", 388)
    assert_one_error_line(result, 1, str(store), "camera serial '../../x'", "refusing to use it in a file name")
    assert snapshot(tmp_path) == before


def test_a_dangling_link_is_refused_as_an_output_file_and_as_an_output_folder(tmp_path, predictions, synthetic_root,
                                                                            synthetic_config):
    """A link to a path that does not exist yet would make the command create a file or folder wherever it points."""
    target = tmp_path / "elsewhere"
    link = tmp_path / "ws" / "out"
    link.parent.mkdir()
    link.symlink_to(target)
    result = run_cli("synthetic", link)
    assert_one_error_line(result, 2, f"The synthetic benchmark folder {link} is a symbolic link to nothing")
    result = run_cli("export-submission", predictions, link, *submission_options(synthetic_root, synthetic_config))
    assert_one_error_line(result, 2, f"The output {link} exists and is a symbolic link, not a regular file")
    assert not target.exists() and snapshot(tmp_path) == {"ws": "dir", "ws/out": f"link -> {target}"}


def test_export_frames_refuses_timesteps_that_are_not_frame_indices(tmp_path, converted):
    store = Path(shutil.copytree(converted, tmp_path / "ws" / "bench.zarr"))
    group = zarr.open_group(store, path=schema.sequence_group("nvs", *SEQUENCE), mode="r+")
    old = group[schema.TIMESTEP]
    values = old[:].astype(np.float64)
    values[1] = np.nan
    group.create_array(schema.TIMESTEP, data=values, dimension_names=old.metadata.dimension_names,
                       attributes=dict(old.attrs), overwrite=True)
    before = snapshot(tmp_path)
    result = run_cli("export-frames", store, tmp_path / "ws" / "export", "-p", 388)
    assert_one_error_line(result, 1, str(store), "timestep coordinate", "float64 values that are not all non-negative")
    assert snapshot(tmp_path) == before
