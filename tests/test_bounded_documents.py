"""Every JSON the project reads goes through the bounded reader, and every camera it writes passes one check
(issue 22, cases 17 and 9).

- A validation split nested 100,000 deep, holding a 5,000-digit integer, or with ``"serials": null`` / ``5``
  is refused by ``evaluate`` and ``export-frames`` in one line (exit 1 or 2), never a traceback.
- No module of the package parses JSON except the bounded reader (and fetch's syntax check of a download).
- A store camera holding NaN or 1e308, or a rotation that is not one, is refused by export-frames in both
  formats before anything is written; convert's calibration reader applies the same rule.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

import nersemble_zarr
from nersemble_zarr import schema
from nersemble_zarr.cli.main import main as cli
from nersemble_zarr.errors import InputDataError
from nersemble_zarr.inputs.calibration import read_calibration

PACKAGE = Path(nersemble_zarr.__file__).parent
JSON_PARSERS = {"inputs/jsontext.py", "fetch/content.py"}  # the bounded reader; fetch's syntax-only check
GROUP = schema.sequence_group("nvs", 388, "GLASSES")
SERIAL = "222200042"
HOSTILE_SPLITS = {
    "deep": '{"benchmark": "nvs", "serials": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "long integer": '{"benchmark": "nvs", "trailing_frames": ' + "7" * 5000 + "}",
    "null serials": '{"benchmark": "nvs", "serials": null}',
    "number serials": '{"benchmark": "nvs", "serials": 5}',
    "number benchmark": '{"benchmark": [1], "serials": ["222200042"]}',
}


def one_line_refusal(result, *names: str) -> str:
    """The run failed with exit 1 or 2 and one Error line that names ``names``; no traceback."""
    assert result.exit_code in (1, 2), (result.exit_code, result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.mark.parametrize("kind", sorted(HOSTILE_SPLITS))
def test_a_hostile_split_file_is_refused_in_one_line_by_evaluate_and_export_frames(converted, tmp_path, kind):
    split = tmp_path / "split.json"
    split.write_text(HOSTILE_SPLITS[kind])
    runner = CliRunner()
    (tmp_path / "predictions").mkdir()
    evaluated = runner.invoke(cli, ["evaluate", str(tmp_path / "predictions"), "--store", str(converted), "-b", "nvs",
                                    "--split", str(split), "--no-jod", "--no-lpips"])
    one_line_refusal(evaluated, str(split))
    exported = runner.invoke(cli, ["export-frames", str(converted), str(tmp_path / "out"), "-p", "388",
                                   "--split", str(split)])
    one_line_refusal(exported, str(split))
    assert not (tmp_path / "out").exists()


def test_no_module_parses_json_but_the_bounded_reader():
    calls = re.compile(r"\bjson\.loads?\(")
    parsers = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
               if calls.search(path.read_text())}
    assert parsers == JSON_PARSERS, f"JSON parsed outside the bounded reader in {sorted(parsers - JSON_PARSERS)}"


@pytest.fixture(scope="module")
def camera_store(converted, tmp_path_factory) -> Path:
    """A private copy of the converted store whose cameras the tests overwrite."""
    return Path(shutil.copytree(converted, tmp_path_factory.mktemp("cameras") / "store.zarr"))


def set_camera(store: Path, variable: str, index: tuple[int, ...], value: float) -> float:
    """Write ``value`` at ``index`` of SERIAL's matrix in ``variable``; returns the value it replaced."""
    serials = [str(s) for s in zarr.open_array(store, path=f"{GROUP}/{schema.SERIAL}", mode="r")[:]]
    array = zarr.open_array(store, path=f"{GROUP}/{variable}", mode="r+")
    position = (serials.index(SERIAL), *index)
    previous = float(array[position])
    array[position] = value
    return previous


@pytest.mark.parametrize("variable, index, value", [
    (schema.WORLD_2_CAM, (0, 3), float("nan")),  # a translation
    (schema.WORLD_2_CAM, (1, 1), 1e308),  # a rotation entry
    (schema.INTRINSICS, (0, 0), 1e308),  # a focal length
    (schema.INTRINSICS, (1, 2), float("inf")),  # the principal point
    (schema.WORLD_2_CAM, (2, 3), 1e300),  # a camera a universe away: finite, rigid, still absurd
])
@pytest.mark.parametrize("format_", ["vhap", "nerfstudio"])
def test_a_broken_camera_is_never_exported(camera_store, tmp_path, variable, index, value, format_):
    previous = set_camera(camera_store, variable, index, value)
    try:
        result = CliRunner().invoke(cli, ["export-frames", str(camera_store), str(tmp_path / "out"), "-p", "388",
                                          "--serials", SERIAL, "--stride", "99", "--format", format_])
    finally:
        set_camera(camera_store, variable, index, previous)
    one_line_refusal(result, SERIAL, str(camera_store))
    assert not (tmp_path / "out").exists()  # refused before any frame or transforms file


def test_the_restored_camera_exports_with_finite_numbers(camera_store, tmp_path):
    """The control of the test above: the same command on the sound store writes strict JSON."""
    result = CliRunner().invoke(cli, ["export-frames", str(camera_store), str(tmp_path / "out"), "-p", "388",
                                      "--serials", SERIAL, "--stride", "99", "--format", "nerfstudio"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "transforms.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in transforms.json"))


def test_convert_reads_cameras_by_the_same_rule(synthetic_root, tmp_path):
    path = synthetic_root / "nvs" / "388" / "calibration" / "camera_params.json"
    document = json.loads(path.read_text())
    document["world_2_cam"][SERIAL][0][:3] = [2.0, 0.0, 0.0]  # invertible, but no rotation: writers would invert wrong
    broken = tmp_path / "camera_params.json"
    broken.write_text(json.dumps(document))
    with pytest.raises(InputDataError, match=f"camera {SERIAL}: its world_2_cam rotation is not a rotation"):
        read_calibration(broken)
    from nersemble_zarr.cameras import camera_problem

    assert camera_problem(np.eye(4), np.diag([500.0, 500.0, 1.0])) is None
    assert "principal point" in camera_problem(np.eye(4), [[500, 0, 5000], [0, 500, 50], [0, 0, 1]], (100, 100))


@pytest.mark.parametrize("format_", ["vhap", "nerfstudio"])
def test_each_transforms_writer_refuses_an_unusable_camera_itself(converted, tmp_path, format_):
    """The writers check what they write too (a plan built without export_frames' checks, e.g. from Python)."""
    from dataclasses import replace

    from nersemble_zarr.errors import StoreError
    from nersemble_zarr.export_frames import nerfstudio, plan_export, vhap

    plan = plan_export(str(converted), participant=388, serials=(SERIAL,), stride=99)
    plan = vhap.vhap_plan(plan) if format_ == "vhap" else nerfstudio.nerfstudio_plan(plan)
    dataset = plan.dataset.copy()
    world_2_cam = np.array(dataset[schema.WORLD_2_CAM].values, copy=True)
    world_2_cam[:, 0, 3] = 1e308
    dataset[schema.WORLD_2_CAM] = (dataset[schema.WORLD_2_CAM].dims, world_2_cam)
    plan = replace(plan, dataset=dataset)
    with pytest.raises(StoreError, match=r"unusable camera into transforms.*its frame 0: its camera centre lies"):
        vhap.write_transforms(tmp_path, plan, None) if format_ == "vhap" else nerfstudio.write_transforms(tmp_path,
                                                                                                          plan)
    assert list(tmp_path.iterdir()) == []


def vhap_source(folder: Path, translation: float) -> Path:
    """A minimal VHAP export folder (one frame) whose camera sits ``translation`` metres along x."""
    folder.mkdir()
    (folder / "canonical_flame_param.npz").write_bytes(b"PK\x05\x06" + bytes(18))
    pose = np.eye(4)
    pose[0, 3] = translation
    frame = {"timestep_index": 0, "timestep_index_original": 0, "timestep_id": "00000", "camera_index": 0,
             "camera_id": SERIAL, "cx": 50.0, "cy": 60.0, "fl_x": 500.0, "fl_y": 500.0, "h": 120, "w": 100,
             "transform_matrix": pose.tolist(), "file_path": "images/00000_00.png"}
    (folder / "transforms.json").write_text(json.dumps({"frames": [frame], "timestep_indices": [0],
                                                        "camera_indices": [0]}))
    return folder


@pytest.mark.parametrize("translation", [float("nan"), 1e308])
def test_combine_vhap_refuses_a_source_with_an_unusable_camera(tmp_path, translation):
    source = vhap_source(tmp_path / "393_A", translation)
    result = CliRunner().invoke(cli, ["combine-vhap", str(tmp_path / "393_UNION"), str(source)])
    one_line_refusal(result, str(source / "transforms.json"), "its frame 0")
    assert not (tmp_path / "393_UNION").exists()
    control = vhap_source(tmp_path / "393_B", 0.5)
    assert CliRunner().invoke(cli, ["combine-vhap", str(tmp_path / "393_OK"), str(control)]).exit_code == 0
