"""Bad-input matrix through the CLI: each hostile or broken input gives its exit code and one ``Error:`` line
naming the file or value, no traceback without --debug, and leaves every file of the user's workspace
(fetched folder, stores, zips, predictions) byte for byte as it was, with nothing new beside them.

Cases already covered elsewhere are not repeated here (docs/reliability.md counts them): truncated, empty
and not-a-video mp4s, metadata with fewer timesteps than the videos, missing calibration, NaN extrinsics,
unknown participant, non-zarr output folder (tests/test_convert.py); unknown names and frames, missing
URL (tests/test_fetch*.py); unsafe, symlinked, duplicated, bombed and damaged zip entries and bad
prediction arrays (tests/test_submission_*.py); unknown FLAME selections, missing model, foreign store
(tests/test_flame_cli.py).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from campaign import report
from helpers import predictions_dataset, tree_digest, write_predictions
from nersemble_zarr import catalogue, schema
from nersemble_zarr.cli.main import main as cli
from nersemble_zarr.synthetic.server import serve
from nersemble_zarr.video import VideoWriter, iter_frames

SERIAL = catalogue.NVS_TRAIN_SERIALS[2]
HOLD_OUT = catalogue.NVS_HOLD_OUT_SERIALS


@dataclass
class Workspace:
    """A user's folder for one case: copies of the fetched benchmark and a converted store, made on demand."""

    folder: Path
    synthetic_root: Path
    converted: Path
    flame_dir: Path
    made: dict[str, Path] = field(default_factory=dict)

    def root(self) -> Path:
        if "root" not in self.made:
            self.made["root"] = Path(shutil.copytree(self.synthetic_root, self.folder / "fetched"))
        return self.made["root"]

    def store(self) -> Path:
        if "store" not in self.made:
            self.made["store"] = Path(shutil.copytree(self.converted, self.folder / "bench.zarr"))
        return self.made["store"]

    def nvs(self, relative: str) -> Path:
        return self.root() / "nvs" / relative

    def mono(self, relative: str) -> Path:
        return self.root() / "mono_flame_avatar" / relative


@dataclass(frozen=True)
class Invocation:
    """The command line of a case and the file or value its error message must name."""

    args: list
    names: str


@dataclass(frozen=True)
class Case:
    """A row of the matrix: how to break the workspace, and the exit code and message fragment expected.

    ``listed``: the command lists every problem on lines before its final ``Error:`` line
    (validate-submission), so the fragment and the name may be on those lines."""

    id: str
    prepare: Callable[[Workspace], Invocation]
    exit_code: int
    fragment: str
    listed: bool = False

    @property
    def command(self) -> str:
        """The CLI command of the row: the part of its name before the colon."""
        return self.id.split(":")[0]


# ------------------------------------------------------------------------------------------------ helpers
def rewrite_video(path: Path, frames: list[np.ndarray]) -> None:
    """Replace an mp4 with an H.264 encoding of ``frames``."""
    height, width = frames[0].shape[:2]
    with VideoWriter(path, width=width, height=height, fps=24) as writer:
        writer.write_all(frames)


def edit_json(path: Path, change: Callable[[dict], object]) -> Path:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    return path


def edit_npz(path: Path, change: Callable[[dict], None]) -> Path:
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    change(arrays)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)  # object arrays are pickled into the file, as a hostile npz would hold them
    return path


class Canary:
    """Unpickling this creates the file at ``path``: proof that a pickle was (or was not) executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def convert(ws: Workspace, *extra, into: Path | None = None) -> list:
    return ["convert", ws.root(), into or ws.store(), *extra]


def nvs_video(ws: Workspace, kind: str = "images", serial: str = SERIAL) -> Path:
    return ws.nvs(catalogue.video_path(388, "GLASSES", serial, kind))


def tracking(ws: Workspace) -> Path:
    return ws.mono(catalogue.tracking_path(393, "EXP-1-head"))


def calibration(ws: Workspace) -> Path:
    return ws.nvs(catalogue.calibration_path(388))


# ------------------------------------------------------------------------------------------------ convert inputs
def video_with_fewer_frames(ws):
    path = nvs_video(ws)
    rewrite_video(path, list(iter_frames(path))[:-1])
    return Invocation(convert(ws), str(path))


def alpha_of_another_size(ws):
    path = nvs_video(ws, "alpha_maps")
    rewrite_video(path, [frame[:-10, :-10] for frame in iter_frames(path)])
    return Invocation(convert(ws), str(path))


def calibration_without_a_serial(ws):
    def drop(document):
        del document["world_2_cam"][SERIAL], document["intrinsics"][SERIAL]
    edit_json(calibration(ws), drop)
    return Invocation(convert(ws), SERIAL)


def calibration_without_intrinsics(ws):
    edit_json(calibration(ws), lambda d: d["intrinsics"].pop(SERIAL))
    return Invocation(convert(ws), str(calibration(ws)))


def calibration_singular(ws):
    def flatten(document):
        document["world_2_cam"][SERIAL] = [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    edit_json(calibration(ws), flatten)
    return Invocation(convert(ws), SERIAL)


def calibration_nan_intrinsics(ws):
    edit_json(calibration(ws), lambda d: d["intrinsics"][SERIAL][0].__setitem__(0, float("nan")))
    return Invocation(convert(ws), str(calibration(ws)))


def calibration_unknown_serial(ws):
    edit_json(calibration(ws), lambda d: d["world_2_cam"].__setitem__("123456789", np.eye(4).tolist()))
    return Invocation(convert(ws), "'123456789'")


def calibration_wrong_shape(ws):
    edit_json(calibration(ws), lambda d: d["world_2_cam"].__setitem__(SERIAL, np.eye(3).tolist()))
    return Invocation(convert(ws), str(calibration(ws)))


def npz_missing_key(ws):
    return Invocation(convert(ws), str(edit_npz(tracking(ws), lambda a: a.pop("jaw"))))


def npz_wrong_shape(ws):
    return Invocation(convert(ws), str(edit_npz(tracking(ws), lambda a: a.update(expression=a["expression"][:, :99]))))


def npz_nan(ws):
    return Invocation(convert(ws), str(edit_npz(tracking(ws), lambda a: a["rotation"].__setitem__((2, 1), np.nan))))


def npz_with_pickled_objects(ws):
    canary = ws.folder / "pickle-was-executed"
    path = edit_npz(tracking(ws), lambda a: a.update(expression=np.array([Canary(canary)] * 6, dtype=object)))
    return Invocation(convert(ws), str(path))  # the unchanged-workspace check proves the canary never ran


def npz_not_a_zip(ws):
    tracking(ws).write_bytes(b"PK\x03\x04 but not really a zip")
    return Invocation(convert(ws), str(tracking(ws)))


def npz_timesteps_unlike_metadata(ws):
    metadata = ws.mono(catalogue.METADATA_FILE)
    edit_json(metadata, lambda d: d["participants_metadata"]["393"]["sequences_metadata"]["EXP-1-head"].update(
        n_frames=7))
    return Invocation(convert(ws), str(tracking(ws)))


def metadata_not_json(ws):
    ws.nvs(catalogue.METADATA_FILE).write_text("{not json")
    return Invocation(convert(ws), str(ws.nvs(catalogue.METADATA_FILE)))


def metadata_wrong_layout(ws):
    ws.nvs(catalogue.METADATA_FILE).write_text(json.dumps({"sequences": [388]}))
    return Invocation(convert(ws), str(ws.nvs(catalogue.METADATA_FILE)))


def metadata_not_an_object(ws):
    ws.mono(catalogue.METADATA_FILE).write_text("[]")
    return Invocation(convert(ws), str(ws.mono(catalogue.METADATA_FILE)))


def metadata_other_sequence(ws):
    edit_json(ws.nvs(catalogue.METADATA_FILE), lambda d: d["sequences"]["388"].update(sequence_name="FREE"))
    return Invocation(convert(ws), "'FREE'")


def metadata_bad_frame_count(ws):
    edit_json(ws.mono(catalogue.METADATA_FILE),
              lambda d: d["participants_metadata"]["393"]["sequences_metadata"]["FREE"].update(n_frames="six"))
    return Invocation(convert(ws), str(ws.mono(catalogue.METADATA_FILE)))


# ------------------------------------------------------------------------------------------------ names
def sequence_name(name: str, benchmark: str = "mono_flame_avatar"):
    return lambda ws: Invocation(convert(ws, "-b", benchmark, "-s", name), repr(name))


def participant_name(ws):
    return Invocation(convert(ws, "-p", "../388"), "'../388'")


def unknown_benchmark(ws):
    return Invocation(convert(ws, "-b", "nersemble"), "'nersemble'")


def traversal_in_meshes(ws):
    return Invocation(["meshes", ws.store(), "-s", "../../x", "--flame-dir", ws.flame_dir], "'../../x'")


def traversal_in_export_mesh(ws):
    output = ws.folder / "mesh.ply"
    return Invocation(["export-mesh", ws.store(), "-p", "393", "-s", "../../x", "-t", "0", "-o", output,
                       "--flame-dir", ws.flame_dir], "'../../x'")


# ------------------------------------------------------------------------------------------------ stores
def newer_store(ws):
    zarr.open_group(ws.store(), mode="r+", use_consolidated=False).attrs[schema.FORMAT_ATTR] = (
        schema.FORMAT_VERSION + 1)
    return ws.store()


def foreign_store(ws):
    path = ws.folder / "foreign.zarr"
    zarr.open_group(path, mode="w").attrs["made_by"] = "someone else"
    return path


def plain_folder(ws):
    path = ws.folder / "photos"
    path.mkdir()
    (path / "holiday.jpg").write_bytes(b"\xff\xd8 not yours to touch")
    return path


def a_file(ws):
    path = ws.folder / "notes.txt"
    path.write_text("keep me")
    return path


def store_case(command: list, make: Callable[[Workspace], Path], needs_root: bool = False):
    def prepare(ws):
        store = make(ws)
        args = [part.format(store=store, root=ws.root() if needs_root else "", flame=ws.flame_dir)
                for part in command]
        return Invocation(args, str(store))
    return prepare


# ------------------------------------------------------------------------------------------------ submissions
RESOLUTION = ["--resolution", "110x160"]
FIRST = catalogue.submission_entry(388, "GLASSES", HOLD_OUT[0])  # 388/GLASSES/cam_222200046.mp4
ANY = "388/GLASSES/cam_"  # cameras are encoded in parallel: any of them may be the one named


def predictions(ws, images: np.ndarray) -> Path:
    """A predictions store holding ``images`` (serial, timestep, y, x, channel) for NVS 388's hold-out cameras."""
    path = ws.folder / "predictions.zarr"
    return write_predictions(path, {schema.sequence_group("nvs", 388, "GLASSES"): predictions_dataset(HOLD_OUT, images)})


def export_of(shape_change: Callable[[np.ndarray], np.ndarray], names: str):
    def prepare(ws):
        frames = shape_change(np.full((len(HOLD_OUT), 6, 160, 110, 3), 128, dtype=np.uint8))
        output = ws.folder / "submission.zip"
        return Invocation(["export-submission", predictions(ws, frames), output, "-b", "nvs", "--root", ws.root(),
                           "--partial", *RESOLUTION], names)
    return prepare


def validate_zip(entries: dict[str, bytes] | None, truncated: bool = False, names: str = "submission.zip"):
    def prepare(ws):
        path = ws.folder / "submission.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in (entries or {"388/GLASSES/cam_222200046.mp4": b"\x00" * 4096}).items():
                archive.writestr(name, data)
        if truncated:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return Invocation(["validate-submission", path, "-b", "nvs", "--root", ws.root(), "--partial",
                           *RESOLUTION], names)
    return prepare


CASES = [
    # convert: broken fetched files
    Case("convert: video with fewer frames than metadata", video_with_fewer_frames, 1,
         "has 5 frames; metadata.json says 6"),
    Case("convert: alpha video of another size", alpha_of_another_size, 1,
         "is 100x150; other videos of the sequence are"),
    Case("convert: calibration missing a serial", calibration_without_a_serial, 1, "has no camera"),
    Case("convert: calibration missing intrinsics of a serial", calibration_without_intrinsics, 1,
         "has no intrinsics"),
    Case("convert: calibration with a non-invertible matrix", calibration_singular, 1,
         "world_2_cam rotation is not a rotation"),
    Case("convert: calibration with NaN intrinsics", calibration_nan_intrinsics, 1,
         "NaN or infinite values in intrinsics"),
    Case("convert: calibration with an unknown serial", calibration_unknown_serial, 1, "unknown camera serial"),
    Case("convert: calibration matrix of the wrong shape", calibration_wrong_shape, 1,
         "of shape (3, 3); expected (4, 4)"),
    Case("convert: tracking npz missing a key", npz_missing_key, 1, "lacks the key 'jaw'"),
    Case("convert: tracking npz with a wrong shape", npz_wrong_shape, 1,
         "expression of shape (6, 99); expected (6, 100)"),
    Case("convert: tracking npz with NaN", npz_nan, 1, "NaN or infinite values in rotation"),
    Case("convert: tracking npz holding a pickled object array", npz_with_pickled_objects, 1,
         "holds Python objects, which are never unpickled"),
    Case("convert: tracking npz that is no zip", npz_not_a_zip, 1, "is not a readable npz"),
    Case("convert: tracking timesteps unlike metadata", npz_timesteps_unlike_metadata, 1,
         "has 6 timesteps; metadata.json says 7"),
    Case("convert: metadata.json not JSON", metadata_not_json, 1, "is not valid JSON"),
    Case("convert: metadata.json of the wrong layout", metadata_wrong_layout, 1, "is not in the expected layout"),
    Case("convert: metadata.json not an object", metadata_not_an_object, 1, "the document is a list, not an object"),
    Case("convert: metadata.json naming another sequence", metadata_other_sequence, 1, "not 'GLASSES'"),
    Case("convert: metadata.json with a non-numeric frame count", metadata_bad_frame_count, 1,
         "is not in the expected layout"),
    # names given on the command line
    Case("convert: unknown sequence", sequence_name("NOPE"), 2, "Unknown sequence 'NOPE' for mono_flame_avatar"),
    Case("convert: sequence name ../x", sequence_name("../x"), 2, "Refusing sequence name"),
    Case("convert: sequence name with a slash (nvs)", sequence_name("GLASSES/../../x", "nvs"), 2,
         "Refusing sequence name"),
    Case("convert: sequence name ..", sequence_name(".."), 2, "Refusing sequence name"),
    Case("convert: participant ../388", participant_name, 2, "is not a valid integer"),
    Case("convert: unknown benchmark", unknown_benchmark, 2, "is not one of"),
    Case("meshes: sequence ../../x", traversal_in_meshes, 1, "has no FLAME tracking for sequence"),
    Case("export-mesh: sequence ../../x", traversal_in_export_mesh, 2, "Refusing sequence name"),
    # stores
    Case("convert: into a newer-format store", store_case(["convert", "{root}", "{store}"], newer_store, True), 1,
         "newer than the 1 this nersemble_zarr"),
    Case("info: newer-format store", store_case(["info", "{store}"], newer_store), 1, "upgrade nersemble_zarr"),
    Case("meshes: newer-format store", store_case(["meshes", "{store}", "--flame-dir", "{flame}"], newer_store), 1,
         "newer than the 1"),
    Case("info: zarr store not ours", store_case(["info", "{store}"], foreign_store), 1,
         "not one written by nersemble_zarr"),
    Case("convert: into a zarr store not ours", store_case(["convert", "{root}", "{store}"], foreign_store, True), 1,
         "not one written by nersemble_zarr"),
    Case("info: non-zarr folder", store_case(["info", "{store}"], plain_folder), 1, "is not a zarr store"),
    Case("downsample: non-zarr folder", store_case(["downsample", "{store}"], plain_folder), 1, "is not a zarr store"),
    Case("convert: into a file", store_case(["convert", "{root}", "{store}"], a_file, True), 1,
         "exists and is not a zarr store"),
    # submissions
    Case("export-submission: frames of the wrong size", export_of(lambda f: f.transpose(0, 1, 3, 2, 4), FIRST), 1,
         "have shape (110, 160, 3)"),
    Case("export-submission: frames of the wrong dtype", export_of(lambda f: f.astype(np.int16), FIRST), 1,
         "have dtype int16; expected uint8"),
    Case("export-submission: too few frames", export_of(lambda f: f[:, :5], FIRST), 1,
         "has 5 frames; the benchmark metadata expects 6"),
    Case("export-submission: float frames with NaN", export_of(lambda f: np.where(f > 0, np.nan, 0.0), ANY), 1,
         "NaN values"),
    Case("validate-submission: truncated zip", validate_zip(None, truncated=True), 1,
         "is not a zip file, or it is truncated", listed=True),
    Case("validate-submission: entry of an unknown camera",
         validate_zip({"388/GLASSES/cam_000000000.mp4": b"x"}, names="cam_000000000.mp4"), 1,
         "1 unexpected entry", listed=True),
    Case("validate-submission: absolute entry", validate_zip({"/tmp/evil.mp4": b"x"}, names="/tmp/evil.mp4"), 1,
         "is an absolute path", listed=True),
    Case("validate-submission: entry climbing with ..",
         validate_zip({"388/GLASSES/../../../evil.mp4": b"x"}, names="evil.mp4"), 1,
         "climbs out of its folder", listed=True),
    Case("validate-submission: entry that is no video", validate_zip(None, names=FIRST), 1,
         "is not a readable video", listed=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_is_refused_in_one_line_and_nothing_changes(case, synthetic_root, converted, standin_dir, tmp_path):
    ws = Workspace(tmp_path / "user", synthetic_root, converted, standin_dir)
    ws.folder.mkdir()
    invocation = case.prepare(ws)
    assert invocation.args[0] == case.command
    before = tree_digest(ws.folder)
    result = CliRunner().invoke(cli, [str(arg) for arg in invocation.args])
    output = result.output
    assert result.exit_code == case.exit_code, output
    assert "Traceback" not in output and isinstance(result.exception, SystemExit), output
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("Error: ") and sum(line.startswith("Error: ") for line in lines) == 1, output
    detail = output if case.listed else lines[-1]
    assert case.fragment in detail and invocation.names in detail, output
    assert tree_digest(ws.folder) == before, "the failed command changed or added files in the user's folder"


# ------------------------------------------------------------------------------------------------ the server's names
NVS_ENTRY = {"sequence_name": "GLASSES", "timesteps": [0, 3]}
HOSTILE_METADATA = {
    "participant ../../388": ("nvs", {"sequences": {"../../388": NVS_ENTRY}}),
    "sequence ../../GLASSES": ("nvs", {"sequences": {"388": {**NVS_ENTRY, "sequence_name": "../../GLASSES"}}}),
    "timestep ../0": ("nvs", {"sequences": {"388": {**NVS_ENTRY, "timesteps": ["../0"]}}}),
    "negative timestep": ("nvs", {"sequences": {"388": {**NVS_ENTRY, "timesteps": [-3]}}}),
    "mono sequence ../../../evil": ("mono_flame_avatar", {"participants_metadata": {"393": {"sequences_metadata": {
        "../../../evil": {"n_frames": 6}, "FREE": {"n_frames": 6}}}}}),
}


@pytest.mark.parametrize("hostile", HOSTILE_METADATA, ids=str)
def test_names_from_the_server_never_shape_a_local_path(hostile, synthetic_root, tmp_path):
    """The server's metadata.json is untrusted: names outside the catalogue are refused or ignored."""
    benchmark, document = HOSTILE_METADATA[hostile]
    served = Path(shutil.copytree(synthetic_root, tmp_path / "server"))
    (served / benchmark / catalogue.METADATA_FILE).write_text(json.dumps(document))
    user = tmp_path / "user"
    with serve(served) as server:
        result = CliRunner().invoke(cli, ["fetch", str(user / "root"), benchmark, "--url", server.url, "-p",
                                          "388" if benchmark == "nvs" else "393"])
    written = {p.relative_to(user).as_posix() for p in user.rglob("*") if p.is_file()}
    assert "Traceback" not in result.output and server.token not in result.output
    assert not any("evil" in path or ".." in path for path in written)
    if benchmark == "nvs":
        assert result.exit_code == 1 and result.output.strip().splitlines()[-1].startswith(
            "Error: The server's nvs/metadata.json is not in the expected layout"), result.output
        assert written == {"root/nvs/metadata.json"}
    else:
        assert result.exit_code == 0, result.output
        assert written == {f"root/{benchmark}/{path}" for path in (
            catalogue.METADATA_FILE, catalogue.calibration_path(393), catalogue.tracking_path(393, "FREE"))}


def test_matrix_rows_are_distinct_and_reach_every_command_that_reads_user_files():
    """Each row has its own name and the rows reach every such command; the matrix's size is reported for
    docs/reliability.md."""
    assert len({row.id for row in CASES}) == len(CASES)
    assert {row.command for row in CASES} == {"convert", "info", "meshes", "export-mesh", "downsample",
                                              "export-submission", "validate-submission"}
    report("bad-input-matrix", cli_cases=len(CASES), hostile_server_metadata_cases=len(HOSTILE_METADATA))
