"""Hostile input files through the CLI (issue 11, items 8, 9 and 13): each is refused with its exit code and
one short ``Error:`` line naming the file or value, no traceback, the fetched folder byte for byte as it was
and no store left behind; values that a cast would change are refused, not stored.

The cases extend the bad-input matrix of tests/test_reliability_inputs.py; docs/reliability.md lists them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av
import numpy as np
import pytest
from click.testing import CliRunner

from campaign import report
from helpers import tree_digest
from nersemble_zarr import catalogue
from nersemble_zarr.cli.main import main as cli
from nersemble_zarr.synthetic.pointcloud import write_pcd
from nersemble_zarr.synthetic.server import serve

SERIAL = catalogue.NVS_TRAIN_SERIALS[2]
OTHER_SERIAL = catalogue.NVS_TRAIN_SERIALS[3]
LONGEST_LINE = 400  # characters of an Error line: long values are cut


# ------------------------------------------------------------------------------------------------ the harness
def assert_refused(result, exit_code: int, name: str, fragment: str) -> str:
    """One short ``Error:`` line naming ``name`` and holding ``fragment``, the exit code, no traceback."""
    output = result.output
    assert result.exit_code == exit_code, output
    assert "Traceback" not in output and isinstance(result.exception, SystemExit), (result.exception, output)
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("Error: ") and sum(line.startswith("Error: ") for line in lines) == 1, output
    assert fragment in lines[-1] and name in lines[-1], output
    assert len(lines[-1]) <= LONGEST_LINE, f"an error line of {len(lines[-1])} characters"
    return lines[-1]


@dataclass(frozen=True)
class Hostile:
    """A convert case: break the fetched copy (``prepare(root)`` returns the name the error must give)."""

    id: str
    prepare: Callable[[Path], str]
    fragment: str
    benchmark: str = ""
    exit_code: int = 1


def nvs(root: Path, relative: str) -> Path:
    return root / "nvs" / relative


def mono(root: Path, relative: str) -> Path:
    return root / "mono_flame_avatar" / relative


def calibration(root: Path) -> Path:
    return nvs(root, catalogue.calibration_path(388))


def nvs_metadata(root: Path) -> Path:
    return nvs(root, catalogue.METADATA_FILE)


def mono_metadata(root: Path) -> Path:
    return mono(root, catalogue.METADATA_FILE)


def tracking(root: Path) -> Path:
    return mono(root, catalogue.tracking_path(393, "EXP-1-head"))


def pointcloud(root: Path) -> Path:
    return nvs(root, catalogue.pointcloud_path(388, "GLASSES", 0))


def video(root: Path, serial: str = SERIAL) -> Path:
    return nvs(root, catalogue.video_path(388, "GLASSES", serial))


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def edit_calibration(change: Callable[[dict], object]) -> Callable[[Path], str]:
    def prepare(root):
        document = json.loads(calibration(root).read_text())
        change(document)
        return write(calibration(root), json.dumps(document))
    return prepare


def with_matrix_entry(text: str, kind: str = "intrinsics") -> Callable[[Path], str]:
    """A calibration whose first entry of ``kind`` of SERIAL is the JSON literal ``text``."""
    def prepare(root):
        document = json.loads(calibration(root).read_text())
        document[kind][SERIAL][0][0] = "@@"
        return write(calibration(root), json.dumps(document).replace('"@@"', text))
    return prepare


def nvs_timesteps(text: str) -> Callable[[Path], str]:
    """An nvs metadata.json whose timesteps of 388 are the JSON text ``text``."""
    document = {"sequences": {"388": {"sequence_name": "GLASSES", "timesteps": "@@"}}}
    return lambda root: write(nvs_metadata(root), json.dumps(document).replace('"@@"', text))


def mono_frame_count(text: str) -> Callable[[Path], str]:
    """A mono metadata.json whose n_frames of 393 EXP-1-head is the JSON text ``text``."""
    document = {"participants_metadata": {"393": {"sequences_metadata": {
        "EXP-1-head": {"n_frames": "@@"}, "FREE": {"n_frames": 6}}}}}
    return lambda root: write(mono_metadata(root), json.dumps(document).replace('"@@"', text))


# ------------------------------------------------------------------------------------------------ npz crafting
def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def tracking_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def write_npz(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)


def edit_tracking(change: Callable[[dict], None]) -> Callable[[Path], str]:
    def prepare(root):
        arrays = tracking_arrays(tracking(root))
        change(arrays)
        write_npz(tracking(root), {key: npy(value) for key, value in arrays.items()})
        return str(tracking(root))
    return prepare


def patched_member(method: int | None = None, flag_bits: int | None = None, first_data_byte: int | None = None):
    """A tracking npz whose ``expression.npy`` member has another compression method, flag bits, or a
    damaged first byte of its deflate stream, in both its local header and the central directory."""
    def prepare(root):
        path = tracking(root)
        write_npz(path, {key: npy(value) for key, value in tracking_arrays(path).items()})
        data = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("expression.npy")
        local = info.header_offset
        name_length, extra_length = struct.unpack("<HH", data[local + 26: local + 30])
        central = data.find(b"PK\x01\x02" + bytes(data[local + 4: local + 6]))
        while data[central + 46: central + 46 + name_length] != b"expression.npy":
            central = data.find(b"PK\x01\x02", central + 4)
        if method is not None:
            data[local + 8: local + 10] = data[central + 10: central + 12] = struct.pack("<H", method)
        if flag_bits is not None:
            data[local + 6: local + 8] = data[central + 8: central + 10] = struct.pack("<H", flag_bits)
        if first_data_byte is not None:
            data[local + 30 + name_length + extra_length] = first_data_byte
        path.write_bytes(bytes(data))
        return str(path)
    return prepare


def member_declaring(shape: tuple, descr: str = "<f8") -> Callable[[Path], str]:
    """A tracking npz whose expression member's header declares ``shape`` over a few bytes of data."""
    def prepare(root):
        members = {key: npy(value) for key, value in tracking_arrays(tracking(root)).items()}
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
        members["expression"] = header.getvalue() + b"\x00" * 64
        write_npz(tracking(root), members, zipfile.ZIP_STORED)
        return str(tracking(root))
    return prepare


# ------------------------------------------------------------------------------------------------ pcd crafting
PCD_HEADER = ("VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {n}\nHEIGHT 1\n"
              "POINTS {n}\nDATA {data}\n")


def pcd_claiming(points: int) -> Callable[[Path], str]:
    def prepare(root):
        path = pointcloud(root)
        path.write_bytes(PCD_HEADER.format(n=points, data="binary").encode() + b"\x00" * 36)
        return str(path)
    return prepare


def pcd_with(bad: float) -> Callable[[Path], str]:
    def prepare(root):
        rng = np.random.default_rng(0)
        points = rng.normal(size=(50, 3)).astype(np.float32)
        points[7, 1] = bad
        write_pcd(pointcloud(root), points, rng.uniform(size=(50, 3)), rng.normal(size=(50, 3)))
        return str(pointcloud(root))
    return prepare


# ------------------------------------------------------------------------------------------------ links
def symlinked_video(root):
    target = video(root, OTHER_SERIAL)
    video(root).unlink()
    video(root).symlink_to(target.name)
    return str(video(root))


def hard_linked_video(root):
    video(root).unlink()
    os.link(video(root, OTHER_SERIAL), video(root))
    return video(root).name  # the message names both files, the one of them it met second by its path


CASES = [
    # item 8: tracebacks instead of one line
    Hostile("calibration nested 100,000 deep", lambda r: write(calibration(r), nested(100_000)), "nests deeper than"),
    Hostile("metadata.json nested 100,000 deep", lambda r: write(nvs_metadata(r), nested(100_000)),
            "nests deeper than", "nvs"),
    Hostile("calibration number of 5,000 digits", with_matrix_entry("9" * 5000), "digits"),
    Hostile("calibration integer 10**400", with_matrix_entry(str(10**400)), "digits"),
    Hostile("calibration float 1e400", with_matrix_entry("1e400"), "NaN or infinite values in intrinsics"),
    Hostile("calibration world_2_cam a list", edit_calibration(lambda d: d.update(world_2_cam=[1, 2])),
            "world_2_cam is a list, not an object"),
    Hostile("calibration intrinsics a number", edit_calibration(lambda d: d.update(intrinsics=5)),
            "intrinsics is a number, not an object"),
    Hostile("calibration matrix rows of strings", with_matrix_entry('"1.5"'), "non-numeric intrinsics"),
    Hostile("calibration matrix a string", edit_calibration(lambda d: d["world_2_cam"].update({SERIAL: "eye"})),
            "non-numeric world_2_cam"),
    Hostile("metadata.json timestep 2**63", nvs_timesteps(f"[0, {2**63}, 6, 9, 12, 15]"), "not all", "nvs"),
    Hostile("metadata.json timestep of 5,000 digits", nvs_timesteps(f"[0, {'3' * 5000}]"), "digits", "nvs"),
    Hostile("metadata.json n_frames Infinity", mono_frame_count("Infinity"), "n_frames", "mono_flame_avatar"),
    Hostile("metadata.json n_frames 1e30", mono_frame_count("1e30"), "n_frames", "mono_flame_avatar"),
    Hostile("tracking npz with a corrupt deflate stream", patched_member(first_data_byte=0xFF), "not a readable npz"),
    Hostile("tracking npz with an unknown compression method", patched_member(method=99), "compression method 99"),
    Hostile("tracking npz with the encrypted flag", patched_member(flag_bits=0x1), "encrypted"),
    Hostile("tracking npz declaring 1e11 floats", member_declaring((100_000_000_000,)), "declares"),
    Hostile("tracking npz declaring a negative size", member_declaring((-5, 100)), "not a readable npz"),
    Hostile("pcd of 150 bytes claiming 2e9 points", pcd_claiming(2_000_000_000), "2000000000 points"),
    Hostile("pcd of 150 bytes claiming 1e6 points", pcd_claiming(1_000_000), "but holds 36 bytes"),
    # item 9: values that a check missed were stored
    Hostile("tracking expression 1e300", edit_tracking(lambda a: a.update(
        expression=a["expression"].astype(np.float64) * 0 + 1e300)), "float32"),
    Hostile("tracking frames 1e30", edit_tracking(lambda a: a.update(frames=np.full(6, 1e30))), "frames"),
    Hostile("tracking frames 2.5", edit_tracking(lambda a: a.update(frames=a["frames"] + 0.5)), "frames"),
    Hostile("tracking frames duplicated", edit_tracking(lambda a: a.update(frames=np.zeros(6, np.int64))),
            "twice"),
    Hostile("tracking complex expression", edit_tracking(lambda a: a.update(
        expression=a["expression"] + 1j)), "complex"),
    Hostile("pcd with a NaN point", pcd_with(np.nan), "NaN or infinite"),
    Hostile("pcd with an infinite point", pcd_with(np.inf), "NaN or infinite"),
    Hostile("metadata.json negative timestep", nvs_timesteps("[0, -3, 6, 9, 12, 15]"), "not all", "nvs"),
    Hostile("metadata.json duplicate timestep", nvs_timesteps("[0, 3, 3, 9, 12, 15]"), "twice", "nvs"),
    Hostile("metadata.json float timestep", nvs_timesteps("[0, 3.5, 6, 9, 12, 15]"), "not all", "nvs"),
    Hostile("metadata.json string timestep", nvs_timesteps('[0, "3", 6, 9, 12, 15]'), "not all", "nvs"),
    Hostile("metadata.json bool timestep", nvs_timesteps("[0, true, 6, 9, 12, 15]"), "not all", "nvs"),
    # item 13: links among the inputs
    Hostile("video symlinked to another camera's", symlinked_video, "symbolic link", "nvs"),
    Hostile("video hard-linked to another camera's", hard_linked_video, "same file as", "nvs"),
]


@pytest.fixture
def fetched(synthetic_root, tmp_path) -> Path:
    """A copy of the fetched tiny benchmark that a case may break."""
    return Path(shutil.copytree(synthetic_root, tmp_path / "fetched", symlinks=True))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_hostile_input_is_refused_in_one_line_and_no_store_is_left(case, fetched, tmp_path):
    name = case.prepare(fetched)
    before = tree_digest(fetched)
    store = tmp_path / "new.zarr"
    args = ["convert", str(fetched), str(store)] + (["-b", case.benchmark] if case.benchmark else [])
    assert_refused(CliRunner().invoke(cli, args), case.exit_code, name, case.fragment)
    assert tree_digest(fetched) == before
    assert not store.exists(), "a failed convert left a store behind"


# ------------------------------------------------------------------------------------------------ one of a kind
def test_a_failed_point_cloud_read_leaves_an_existing_store_as_it_was(fetched, tmp_path):
    store = tmp_path / "existing.zarr"
    assert CliRunner().invoke(cli, ["convert", str(fetched), str(store), "-b", "mono_flame_avatar"]).exit_code == 0
    before = tree_digest(store)
    name = pcd_with(np.nan)(fetched)
    assert_refused(CliRunner().invoke(cli, ["convert", str(fetched), str(store)]), 1, name, "NaN or infinite")
    assert tree_digest(store) == before


def test_a_video_corrupt_at_frame_1_is_reported_at_frame_1(fetched, tmp_path):
    """Frame 0 decodes; the packet of frame 1 is damaged (decode order differs from display order)."""
    path = video(fetched)
    with av.open(str(path)) as container:
        packets = [(p.pts, p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    _, position, size = sorted(packets)[1]
    data = bytearray(path.read_bytes())
    data[position + 4: position + size] = b"\xff" * (size - 4)
    path.write_bytes(bytes(data))
    store = tmp_path / "new.zarr"
    result = CliRunner().invoke(cli, ["convert", str(fetched), str(store), "-b", "nvs", "-j", "1"])
    assert_refused(result, 1, str(path), "corrupt at frame 1;")
    assert not store.exists()


def test_a_sequence_name_of_100000_characters_gives_a_short_line(fetched, tmp_path):
    name = "A" * 100_000 + "/.."
    line = assert_refused(CliRunner().invoke(cli, ["convert", str(fetched), str(tmp_path / "s.zarr"), "-s", name]),
                          2, "'AAAA", "100003 characters")
    assert "Refusing sequence name" in line


def test_a_participant_of_100000_digits_gives_a_short_line(fetched, tmp_path):
    result = CliRunner().invoke(cli, ["convert", str(fetched), str(tmp_path / "s.zarr"), "-p", "3" * 100_000])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output) < 2 * LONGEST_LINE + 200 and "is not a valid integer" in result.output, result.output[:500]


def test_open3d_warnings_never_reach_stdout(fetched, tmp_path):
    """A point cloud whose compressed data open3d cannot unpack: open3d's own warning (with ANSI colour codes)
    must not reach stdout; the one Error line on stderr gives its reason without escape codes."""
    path = pointcloud(fetched)
    path.write_bytes(PCD_HEADER.format(n=10, data="binary_compressed").encode() + struct.pack("<II", 100, 120)
                     + bytes(range(100)))
    store = tmp_path / "new.zarr"
    script = Path(sys.executable).with_name("nersemble-zarr")
    result = subprocess.run([str(script), "convert", str(fetched), str(store), "-b", "nvs"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1 and result.stdout == "", result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"Error: The point cloud {path}") and "Uncompression failed" in lines[-1], result.stderr
    assert "\x1b" not in result.stderr and "Traceback" not in result.stderr
    assert not store.exists()


# ------------------------------------------------------------------------------------------------ fetch
SERVER_METADATA = {
    "nested 100,000 deep": (nested(100_000), "nests deeper than"),
    "timestep 10**249": (json.dumps({"sequences": {"388": {"sequence_name": "GLASSES", "timesteps": [0, 10**249]}}}),
                         "digits"),
    "timestep 10**15": (json.dumps({"sequences": {"388": {"sequence_name": "GLASSES", "timesteps": [0, 10**15]}}}),
                        "not all"),
    "duplicate key": ('{"sequences": {"388": {"sequence_name": "GLASSES", "timesteps": [0]}, '
                      '"388": {"sequence_name": "GLASSES", "timesteps": [3]}}}', "twice"),
    "sequence name of 100,000 characters": (json.dumps({"sequences": {"388": {"sequence_name": "G" * 100_000,
                                                                              "timesteps": [0]}}}), "not 'GLASSES'"),
}


@pytest.mark.parametrize("hostile", SERVER_METADATA, ids=str)
def test_hostile_server_metadata_is_refused_in_one_line(hostile, synthetic_root, tmp_path):
    text, fragment = SERVER_METADATA[hostile]
    served = Path(shutil.copytree(synthetic_root, tmp_path / "server"))
    (served / "nvs" / catalogue.METADATA_FILE).write_text(text)
    user = tmp_path / "user"
    with serve(served) as server:
        result = CliRunner().invoke(cli, ["fetch", str(user), "nvs", "--url", server.url, "-p", "388",
                                          "-a", "pointclouds", "--pointcloud-frames", "all"])
    assert_refused(result, 1, "nvs/metadata.json", fragment)
    assert server.token not in result.output
    assert {p.relative_to(user).as_posix() for p in user.rglob("*") if p.is_file()} <= {"nvs/metadata.json"}


def test_the_cases_are_distinct_and_counted():
    assert len({case.id for case in CASES}) == len(CASES)
    report("hostile-inputs", convert_cases=len(CASES), server_metadata_cases=len(SERVER_METADATA))


def test_the_limits_refuse_only_what_they_name():
    """Brackets inside strings (escaped quotes too) do not count as nesting; depth 16 and 20-digit integers
    pass; a long value is cut in a message and says how long it was."""
    from nersemble_zarr.errors import InputDataError, shown
    from nersemble_zarr.inputs.jsontext import MAX_DEPTH, parse_json
    from nersemble_zarr.inputs.origin import Origin

    origin = Origin("The test document")
    text = json.dumps({"a\"[[": "[" * 1000, "b": [-(10**19)]})
    assert parse_json(text.encode(), origin) == {"a\"[[": "[" * 1000, "b": [-(10**19)]}
    assert parse_json(nested(MAX_DEPTH).encode(), origin) == json.loads(nested(MAX_DEPTH))
    with pytest.raises(InputDataError, match="nests deeper than 16 levels"):
        parse_json(nested(MAX_DEPTH + 1).encode(), origin)
    with pytest.raises(InputDataError, match="a number of 21 digits"):
        parse_json(b"[" + b"1" * 21 + b"]", origin)
    assert shown("x" * 100_000).endswith("... (100000 characters)") and len(shown("x" * 100_000)) < 100
    assert shown(10**5000) == "<an integer of about 5001 digits>"
    assert shown("GLASSES") == "'GLASSES'"
