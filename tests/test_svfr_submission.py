"""SVFR submissions: export from folders, mappings and FLAME parameters, validation, and what is refused.

Every zip that should be valid is also checked by the official toolkit's SVFRSubmissionDataReader, and its
meshes are read back with trimesh's load_ply, the server's reader.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from trimesh.exchange.ply import load_ply

from nersemble_zarr import catalogue
from nersemble_zarr.cli.main import main
from nersemble_zarr.errors import SubmissionError
from nersemble_zarr.flame import FlameModel, FlameParameters, load_flame_assets, write_mesh
from nersemble_zarr.flame.mesh_io import ply_bytes
from nersemble_zarr.submission import SvfrFlamePredictions, export_svfr_submission, validate_svfr_submission
from nersemble_zarr.submission.svfr_predictions import all_svfr_keys
from nersemble_zarr.synthetic import SyntheticConfig, svfr_flame_parameters

KEYS = all_svfr_keys()
FLAME_NAMES = ("shape", "expression", "jaw", "neck", "eyes", "rotation", "translation", "scale")
FIRST = KEYS[9]  # participant 17, EXP-4-lips, timestep 6: padded differently on disk and in the zip
TETRA_FACES = np.array([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])


def flame_parameters(config: SyntheticConfig, key) -> dict[str, np.ndarray]:
    """The parameters behind a synthetic SVFR image, as a method would predict them."""
    return {name: svfr_flame_parameters(config, *key)[name] for name in FLAME_NAMES}


def official_issues(path: Path) -> dict:
    from nersemble_benchmark.data.submission_data import SVFRSubmissionDataReader

    return SVFRSubmissionDataReader(str(path)).validate_submission()


def tetra(index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small non-FLAME mesh (4 vertices) with its 7 landmarks, different per index."""
    rng = np.random.default_rng(index)
    vertices = np.eye(4, 3) * 0.1 + rng.normal(scale=0.01, size=(4, 3))
    return vertices.astype(np.float32), TETRA_FACES, rng.normal(size=(7, 3)).astype(np.float32)


def key_tuple(key) -> tuple:
    participant, image = key
    return (participant, image.sequence, image.timestep, image.serial)


def write_prediction(folder: Path, key, task: str, mesh, *, name: str | None = None, suffix: str = ".ply") -> Path:
    participant, image = key
    key_dir = folder / f"{participant:03d}" / (name or catalogue.svfr_folder(image))
    key_dir.mkdir(parents=True, exist_ok=True)
    vertices, faces, landmarks = mesh
    if suffix == ".ply":  # written by trimesh, as many methods do
        (key_dir / f"mesh_{task}.ply").write_bytes(trimesh.Trimesh(vertices, faces, process=False).export(file_type="ply"))
    else:
        write_mesh(key_dir / f"mesh_{task}{suffix}", vertices, faces)
    if landmarks is not None:
        np.save(key_dir / f"landmarks_{task}.npy", landmarks)
    return key_dir / f"mesh_{task}{suffix}"


def assert_nothing_written(folder: Path) -> None:
    assert [p.name for p in folder.iterdir()] == []


# ---------------------------------------------------------------- the three prediction forms
def test_a_folder_of_both_tasks_exports_and_every_reader_accepts_it(tmp_path) -> None:
    predictions = tmp_path / "pred" / "svfr"
    meshes = {}
    for index, key in enumerate(KEYS):
        padded = index % 2 == 0  # half the folders named as fetched, half as in the zip
        name = catalogue.svfr_submission_folder(key[1]) if padded else None
        for task in catalogue.SVFR_TASKS:
            meshes[key, task] = tetra(2 * index + (task == "neutral"))
            write_prediction(predictions, key, task, meshes[key, task], name=name, suffix=".obj" if index % 3 else ".ply")
    output = tmp_path / "out" / "svfr.zip"
    output.parent.mkdir()
    result = CliRunner().invoke(main, ["export-submission", str(tmp_path / "pred"), str(output), "-b", "svfr"])
    assert result.exit_code == 0, result.output
    assert "782 validated svfr meshes" in result.output
    assert official_issues(output) == {}
    with zipfile.ZipFile(output) as archive:
        assert len(archive.namelist()) == 4 * 391
        for (key, task), (vertices, faces, landmarks) in meshes.items():
            entry = catalogue.svfr_mesh_entry(key[0], key[1], task)
            read = load_ply(io.BytesIO(archive.read(entry)))
            assert read["vertices"].dtype == np.float32 and np.array_equal(read["vertices"], vertices), entry
            assert np.array_equal(read["faces"], faces), entry
            stored = np.load(io.BytesIO(archive.read(catalogue.svfr_landmarks_entry(key[0], key[1], task))))
            assert np.array_equal(stored, landmarks)
    valid = CliRunner().invoke(main, ["validate-submission", str(output), "-b", "svfr"])
    assert valid.exit_code == 0 and "782 meshes checked" in valid.output
    assert sorted(p.name for p in output.parent.iterdir()) == ["svfr.zip"]


def test_flame_parameters_make_posed_meshes_of_the_batched_flame(standin_dir, tmp_path) -> None:
    config = SyntheticConfig()
    predictions = SvfrFlamePredictions({key_tuple(key): flame_parameters(config, key) for key in KEYS})
    output = tmp_path / "posed.zip"
    report = export_svfr_submission(predictions, output, tasks=("posed",), flame_dir=standin_dir, device="cpu")
    assert report.ok and len(report.valid_videos) == 391
    assert official_issues(output) == {}
    params = predictions[key_tuple(FIRST)]
    model = FlameModel.load(standin_dir, device="cpu")
    expected = model.evaluate(FlameParameters(
        shape=params["shape"], scale=float(params["scale"]),
        **{name: params[name][None] for name in ("expression", "rotation", "translation", "jaw", "neck", "eyes")},
    )).vertices[0]
    with zipfile.ZipFile(output) as archive:
        assert not any("neutral" in name for name in archive.namelist())
        read = load_ply(io.BytesIO(archive.read(catalogue.svfr_mesh_entry(*FIRST, "posed"))))
    np.testing.assert_allclose(read["vertices"], expected, atol=1e-5)
    assert np.array_equal(read["faces"], model.faces)


def test_neutral_meshes_come_from_the_shape_alone(standin_dir, tmp_path) -> None:
    config = SyntheticConfig()
    base = flame_parameters(config, FIRST)
    other = dict(flame_parameters(config, KEYS[0]), shape=base["shape"], scale=np.float32(1.3))
    predictions = SvfrFlamePredictions({key_tuple(FIRST): base, key_tuple(KEYS[0]): other})
    output = tmp_path / "both.zip"
    report = export_svfr_submission(predictions, output, partial=True, flame_dir=standin_dir, device="cpu")
    assert report.ok and len(report.valid_videos) == 4
    with zipfile.ZipFile(output) as archive:
        def vertices(key, task):
            return load_ply(io.BytesIO(archive.read(catalogue.svfr_mesh_entry(*key, task))))["vertices"]

        assert np.array_equal(vertices(FIRST, "neutral"), vertices(KEYS[0], "neutral"))  # same shape, pose ignored
        assert not np.allclose(vertices(FIRST, "neutral"), vertices(FIRST, "posed"), atol=1e-3)
    neutral = FlameModel.load(standin_dir, device="cpu").evaluate(FlameParameters(
        shape=base["shape"], scale=1.0, expression=np.zeros((1, 100)), rotation=np.zeros((1, 3)),
        translation=np.zeros((1, 3)), jaw=np.zeros((1, 3)), neck=np.zeros((1, 3)), eyes=np.zeros((1, 6)),
    )).vertices[0]
    np.testing.assert_allclose(vertices_of(output, FIRST, "neutral"), neutral, atol=1e-5)


def vertices_of(path: Path, key, task: str) -> np.ndarray:
    with zipfile.ZipFile(path) as archive:
        return load_ply(io.BytesIO(archive.read(catalogue.svfr_mesh_entry(*key, task))))["vertices"]


def test_a_mapping_of_flame_vertices_and_of_other_meshes_for_a_quick_check(standin_dir, tmp_path) -> None:
    template = load_flame_assets(standin_dir).v_template.astype(np.float32)
    predictions = {
        "posed": {key_tuple(KEYS[0]): template, key_tuple(KEYS[1]): tetra(1)},
        "neutral": {key_tuple(KEYS[0]): tetra(2)[:2] + (tetra(2)[2],)},
    }
    output = tmp_path / "quick.zip"
    report = export_svfr_submission(predictions, output, partial=True, flame_dir=standin_dir)
    assert report.ok and len(report.valid_videos) == 3
    assert np.array_equal(vertices_of(output, KEYS[0], "posed"), template)
    issues = official_issues(output)
    assert set(issues) == {"missing_posed_meshes", "missing_neutral_meshes"}  # a quick check is incomplete
    assert (len(issues["missing_posed_meshes"]), len(issues["missing_neutral_meshes"])) == (389, 390)
    with pytest.raises(SubmissionError, match=r"389 of 391 posed meshes are missing .*--partial"):
        export_svfr_submission(predictions, tmp_path / "full.zip", flame_dir=standin_dir)
    assert not (tmp_path / "full.zip").exists()


# ---------------------------------------------------------------- refused predictions leave no zip
def refused_folder(tmp_path: Path, mesh, *, name: str | None = None, key=FIRST, suffix=".ply") -> tuple[Path, Path]:
    predictions = tmp_path / "pred"
    path = write_prediction(predictions, key, "posed", mesh, name=name, suffix=suffix)
    return predictions, path


@pytest.mark.parametrize("case", ["NaN vertices", "faces out of range", "no landmarks", "landmarks of shape (5, 3)"])
def test_bad_folder_meshes_are_refused_naming_the_file(tmp_path, case) -> None:
    vertices, faces, landmarks = tetra(0)
    nan = vertices.copy()
    nan[1, 2] = np.nan
    mesh = {
        "NaN vertices": (nan, faces, landmarks),
        "faces out of range": (vertices, faces + 1, landmarks),
        "no landmarks": (vertices, faces, None),
        "landmarks of shape (5, 3)": (vertices, faces, landmarks[:5]),
    }[case]
    predictions, path = refused_folder(tmp_path, mesh, suffix=".obj")
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(main, ["export-submission", str(predictions), str(out / "s.zip"), "-b", "svfr", "--partial"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    message = result.output.strip()
    assert message.count("\n") == 0 and str(path) in message
    assert {"NaN vertices": "the vertices hold NaN, infinite or non-numeric values",
            "faces out of range": "face indices run 1..4, outside the 4 vertices",
            "no landmarks": "needs its 7 NoW landmarks",
            "landmarks of shape (5, 3)": "landmarks have shape (5, 3); expected (7, 3)"}[case] in message
    assert_nothing_written(out)


def test_nan_vertices_in_a_mapping_are_refused(tmp_path) -> None:
    vertices, faces, landmarks = tetra(0)
    vertices[2, 1] = np.nan
    with pytest.raises(SubmissionError, match=r"The posed mesh of 017/EXP-4-lips_6_221501007: .*NaN"):
        export_svfr_submission({"posed": {key_tuple(FIRST): (vertices, faces, landmarks)}}, tmp_path / "s.zip",
                               partial=True)
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("name,expected", [
    ("EXP-4-lips_06_221501007", "writes timestep 6 with the wrong padding; name it EXP-4-lips_6_221501007"),
    ("EXP-4-lips_7_221501007", "names no SVFR image of participant 17"),
])
def test_misnamed_and_unknown_folders_are_refused(tmp_path, name, expected) -> None:
    predictions, path = refused_folder(tmp_path, tetra(0), name=name)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SubmissionError, match=expected) as caught:
        export_svfr_submission(predictions, out / "s.zip", partial=True)
    assert str(path.parent) in str(caught.value)
    assert_nothing_written(out)


def test_unknown_keys_and_tasks_in_a_mapping_are_refused(tmp_path) -> None:
    with pytest.raises(SubmissionError, match=r"\(17, 'EXP-4-lips', 7, '221501007'\) is not one of the benchmark's 391"):
        export_svfr_submission({"posed": {(17, "EXP-4-lips", 7, "221501007"): tetra(0)}}, tmp_path / "s.zip", partial=True)
    with pytest.raises(SubmissionError, match="'expression' is not a task"):
        export_svfr_submission({"expression": {}}, tmp_path / "s.zip")
    assert_nothing_written(tmp_path)


# ---------------------------------------------------------------- validating zips made elsewhere
def zip_of(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_every_problem_is_reported_at_once_and_the_official_reader_agrees(tmp_path) -> None:
    vertices, faces, landmarks = tetra(0)
    nan = vertices.copy()
    nan[0, 0] = np.nan
    entry = lambda i, name="mesh_posed.ply": f"{KEYS[i][0]:03d}/{catalogue.svfr_submission_folder(KEYS[i][1])}/{name}"  # noqa: E731
    path = zip_of(tmp_path / "bad.zip", {
        entry(0): ply_bytes(vertices, faces),  # no landmarks
        entry(1): ply_bytes(vertices, faces), entry(1, "landmarks_posed.npy"): npy(landmarks[:5]),
        entry(2): ply_bytes(vertices, np.zeros((0, 3), np.int32)),  # no faces
        entry(3): ply_bytes(nan, faces), entry(3, "landmarks_posed.npy"): npy(landmarks),
        entry(4): ply_bytes(vertices, faces), entry(4, "landmarks_posed.npy"): npy(landmarks),  # fine
        "notes.txt": b"hello",
    })
    report = validate_svfr_submission(path, partial=True)
    text = " ".join(report.problems)
    assert f"{entry(0)} has no {entry(0, 'landmarks_posed.npy')}" in text
    assert f"{entry(1, 'landmarks_posed.npy')} has shape (5, 3)" in text
    assert f"{entry(2)} is empty (4 vertices, 0 faces)" in text
    assert f"{entry(3)} has 1 vertices with NaN" in text
    assert "1 unexpected entry ('notes.txt')" in text
    assert f"{entry(2)} has no {entry(2, 'landmarks_posed.npy')}" in text  # empty, and no landmarks either
    assert report.valid_videos == (entry(4),) and len(report.problems) == 6
    full = validate_svfr_submission(path)
    assert any("386 of 391 posed meshes are missing" in p for p in full.problems)
    issues = official_issues(path)
    assert issues["missing_posed_landmarks"] == [entry(0, "landmarks_posed.npy"), entry(2, "landmarks_posed.npy")]
    assert issues["wrong_posed_landmarks"] == [(entry(1, "landmarks_posed.npy"), (5, 3))]
    assert issues["empty_posed_meshes"] == [entry(2)]
    assert issues["unexpected_files"] == ["notes.txt"] and len(issues["missing_posed_meshes"]) == 386


def test_hostile_entries_wrong_padding_and_no_task(tmp_path) -> None:
    vertices, faces, landmarks = tetra(0)
    good = f"017/{catalogue.svfr_submission_folder(FIRST[1])}/mesh_posed.ply"
    entries = {
        good: ply_bytes(vertices, faces), good.replace("mesh_posed.ply", "landmarks_posed.npy"): npy(landmarks),
        "017/EXP-4-lips_6_221501007/mesh_posed.ply": ply_bytes(vertices, faces),
        "../evil.ply": b"x",
        f"017/{catalogue.svfr_submission_folder(KEYS[1][1])}/mesh_posed.ply": ply_bytes(vertices, faces + 2),
    }
    report = validate_svfr_submission(zip_of(tmp_path / "hostile.zip", entries), partial=True)
    text = " ".join(report.problems)
    assert "'017/EXP-4-lips_6_221501007/mesh_posed.ply' writes timestep 6 with the wrong padding" in text
    assert "'../evil.ply' climbs out of its folder" in text
    assert "face indices 2..5, outside its 4 vertices" in text
    none = validate_svfr_submission(zip_of(tmp_path / "none.zip", {"readme.txt": b"hi"}))
    assert any("holds no SVFR task" in p for p in none.problems)
    assert official_issues(tmp_path / "none.zip")["missing_svfr_tasks"] == ["posed", "neutral"]
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    result = CliRunner().invoke(main, ["validate-submission", str(tmp_path / "junk.zip"), "-b", "svfr"])
    assert result.exit_code == 1 and "is not a zip file" in result.output and "Traceback" not in result.output
    video_only = CliRunner().invoke(main, ["validate-submission", str(tmp_path / "none.zip"), "-b", "svfr",
                                           "--resolution", "10x10"])
    assert video_only.exit_code == 2 and "--resolution do(es) not apply to --benchmark svfr" in video_only.output
