"""nersemble_zarr.compat for SVFR against the official toolkit (nersemble-benchmark 0.2.0) on synthetic images.

The official README's SVFR examples run with only their import lines changed, on a fetched folder and on a
store, and return the official classes' images pixel for pixel; zips written through the compat writer are
read by the official SVFRSubmissionDataReader, whose findings the compat reader reproduces offline.
"""

from __future__ import annotations

import gc
import io
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh

from nersemble_zarr import catalogue, storage
from nersemble_zarr.convert import convert
from nersemble_zarr.errors import CatalogueError, InputDataError, StoreError, SubmissionError
from nersemble_zarr.flame.mesh_io import ply_bytes
from nersemble_zarr.synthetic import SyntheticConfig, generate

official_data = pytest.importorskip("nersemble_benchmark.data.benchmark_data")
official_submission = pytest.importorskip("nersemble_benchmark.data.submission_data")

TETRA_FACES = np.array([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])
FLAME_SIZED_FACES = np.stack([np.arange(5021), np.arange(1, 5022), np.arange(2, 5023)], axis=1)  # uses all 5023


def one_sentence(error: BaseException) -> str:
    """The error's message, asserted to be one sentence on one line."""
    text = str(error)
    assert text.endswith(".") and "\n" not in text and not re.search(r"[.!?] +[A-Z]", text), text
    return text


@pytest.fixture(scope="module")
def every_svfr_image(tmp_path_factory) -> Path:
    """All 391 synthetic SVFR images of the 20 participants (1/10 size): the README loops over every one."""
    config = SyntheticConfig(scale=0.1, nvs_participants=(), mono_participants=())
    return generate(tmp_path_factory.mktemp("svfr_every") / "benchmark", config)


@pytest.fixture(scope="module")
def every_svfr_store(every_svfr_image, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("svfr_every_store") / "svfr.zarr"
    convert(every_svfr_image, store, workers=2)
    return store


def tetra(index: int):
    """A small mesh that is not FLAME (4 vertices) and its 7 NoW landmarks, different per index."""
    rng = np.random.default_rng(index)
    vertices = (np.eye(4, 3) * 0.1 + rng.normal(scale=0.01, size=(4, 3))).astype(np.float32)
    return trimesh.Trimesh(vertices, TETRA_FACES, process=False), rng.normal(size=(7, 3)).astype(np.float32)


def flame_sized(index: int) -> trimesh.Trimesh:
    """A mesh of FLAME's 5023 vertices (every one used by a face), which needs no landmarks."""
    vertices = np.random.default_rng(index).normal(size=(5023, 3)).astype(np.float32)
    return trimesh.Trimesh(vertices, FLAME_SIZED_FACES, process=False)


def official_issues(path: Path) -> dict:
    return official_submission.SVFRSubmissionDataReader(str(path)).validate_submission()


# ---------------------------------------------------------------- the data manager
@pytest.mark.parametrize("kind", ["folder", "store"])
def test_readme_example_loads_the_official_images(kind, every_svfr_image, every_svfr_store):
    benchmark_folder = every_svfr_image if kind == "folder" else every_svfr_store
    seen = {}
    # The README's section 3.4 with the imports changed.
    from nersemble_zarr.compat.constants import BENCHMARK_SVFR_IDS
    from nersemble_zarr.compat import SVFRDataManager

    for participant_id in BENCHMARK_SVFR_IDS:  # <- Iterate over all 20 benchmark persons
        svfr_data_manager = SVFRDataManager(benchmark_folder, participant_id)
        image_keys = svfr_data_manager.list_image_keys()  # <- Get the list of images for that person

        for image_key in image_keys:
            image = svfr_data_manager.load_image(image_key)  # <- Load the actual image
            seen[participant_id, image_key.to_key()] = (image_key, image)

    assert len(seen) == 391
    for participant_id in BENCHMARK_SVFR_IDS:
        official = official_data.SVFRDataManager(str(every_svfr_image), participant_id)
        official_keys = official.list_image_keys()
        ours = [key for (p, _), (key, _) in seen.items() if p == participant_id]
        assert [vars(k) for k in ours] == [vars(k) for k in official_keys]
        for key in official_keys:
            expected = official.load_image(key)
            image = seen[participant_id, key.to_key()][1]
            assert image.dtype == expected.dtype == np.uint8 and image.shape == expected.shape
            np.testing.assert_array_equal(image, expected)


def test_keys_and_folders_follow_the_official_manager(svfr_root, svfr_store):
    from nersemble_zarr.compat import ImageKey, SVFRDataManager

    for participant in (17, 215):
        official = official_data.SVFRDataManager(str(svfr_root), participant)
        expected = official.list_image_keys()
        for location in (svfr_root, svfr_store):
            keys = SVFRDataManager(location, participant).list_image_keys()
            assert all(type(key) is ImageKey for key in keys)
            assert [vars(k) for k in keys] == [vars(k) for k in expected]
        assert sorted((k.sequence_name, k.timestep, k.serial) for k in expected) == sorted(
            catalogue.svfr_image_keys()[participant])
    key = ImageKey("EXP-4-lips", 6, "221501007")  # timestep 6: "_6_" on disk, "_006_" in a zip
    ours = SVFRDataManager(svfr_root, 17)
    assert ours.get_asset_folder(key) == official_data.SVFRDataManager(str(svfr_root), 17).get_asset_folder(key)
    assert ours.get_asset_folder(key).endswith("/svfr/017/EXP-4-lips_6_221501007") and key.to_key() == "EXP-4-lips_006_221501007"
    np.testing.assert_array_equal(SVFRDataManager(svfr_store, 17).load_image(key), ours.load_image(key))


def test_a_store_lists_and_loads_only_converted_images(svfr_store, tmp_path):
    from nersemble_zarr.compat import SVFRDataManager

    store = Path(shutil.copytree(svfr_store, tmp_path / "svfr.zarr"))
    manager = SVFRDataManager(store, 215)
    first = manager.list_image_keys()[0]
    index = catalogue.svfr_image_keys()[215].index(catalogue.ImageKey(first.sequence_name, first.timestep, first.serial))
    flags = storage.open_array(store, "svfr/215/images_converted", mode="r+")
    flags[index] = False  # as if convert had died before this image
    manager = SVFRDataManager(store, 215)
    assert len(manager.list_image_keys()) == 12 and vars(first) not in [vars(k) for k in manager.list_image_keys()]
    with pytest.raises(StoreError, match="was not converted yet") as error:
        manager.load_image(first)
    one_sentence(error.value)


def test_data_manager_errors_name_the_missing_thing(svfr_root, svfr_store, tmp_path):
    from nersemble_zarr.compat import ImageKey, SVFRDataManager

    with pytest.raises(CatalogueError, match="Unknown participant 18") as error:
        SVFRDataManager(svfr_root, 18)
    one_sentence(error.value)
    cases = [
        (lambda: SVFRDataManager(svfr_root, 60).list_image_keys(), InputDataError, "No SVFR images of participant 60"),
        (lambda: SVFRDataManager(svfr_store, 60).list_image_keys(), StoreError, "no SVFR group svfr/60"),
        (lambda: SVFRDataManager(svfr_root, 17).load_image(ImageKey("FREE", 1, "221501007")), InputDataError,
         "Could not find the SVFR image"),
        (lambda: SVFRDataManager(svfr_store, 17).load_image(ImageKey("FREE", 1, "221501007")), StoreError,
         "No SVFR image 'FREE_1_221501007'"),
        (lambda: SVFRDataManager(svfr_root, 17).load_image(ImageKey("../../etc", 1, "passwd")), CatalogueError,
         "Refusing sequence name"),
        (lambda: SVFRDataManager(svfr_root, 17).get_asset_folder(ImageKey("FREE", 1, "1/../../x")), CatalogueError,
         "Refusing serial name"),
        (lambda: SVFRDataManager(svfr_root, 17).load_image(ImageKey("FREE", "1", "221501007")), InputDataError,
         "is not a frame index"),
        (lambda: SVFRDataManager(svfr_root, 17).load_image("FREE_001_221501007"), InputDataError, "is not an ImageKey"),
    ]
    for call, kind, message in cases:
        with pytest.raises(kind, match=message) as error:
            call()
        one_sentence(error.value)
    broken = Path(shutil.copytree(svfr_root, tmp_path / "fetched"))
    key = SVFRDataManager(broken, 215).list_image_keys()[0]
    png = Path(SVFRDataManager(broken, 215).get_asset_folder(key)) / "rgb.png"
    png.write_bytes(png.read_bytes()[:200])
    with pytest.raises(InputDataError, match="rgb.png cannot be decoded") as error:
        SVFRDataManager(broken, 215).load_image(key)
    assert str(png) in one_sentence(error.value)


# ---------------------------------------------------------------- submissions
def test_readme_submission_example_validates_with_the_official_reader(tmp_path):
    zip_path = tmp_path / "out" / "svfr_submission.zip"
    meshes = {}
    # The README's section 4.3 with the imports changed.
    from nersemble_zarr.compat.constants import BENCHMARK_SVFR_IMAGE_KEYS
    from nersemble_zarr.compat import SVFRSubmissionDataWriter

    with SVFRSubmissionDataWriter(zip_path) as submission_data_writer:
        for participant_id, image_keys in BENCHMARK_SVFR_IMAGE_KEYS.items():
            for sequence_name, timestep, serial in image_keys:
                mesh, now_landmarks = tetra(len(meshes))  # <- Your prediction for the input image
                meshes[participant_id, sequence_name, timestep, serial] = (mesh, now_landmarks)

                # If you want to submit to the posed reconstruction subtask:
                submission_data_writer.add_posed_mesh(participant_id, sequence_name, timestep, serial, mesh, now_landmarks)

    assert official_issues(zip_path) == {}
    from nersemble_zarr.compat import SVFRSubmissionDataReader

    ours = SVFRSubmissionDataReader(zip_path)
    assert ours.validate_submission() == {} and ours.report().ok
    official = official_submission.SVFRSubmissionDataReader(str(zip_path))
    assert ours.has_posed_reconstructions() and not ours.has_neutral_reconstructions()
    assert official.has_posed_reconstructions() and not official.has_neutral_reconstructions()
    for key in list(meshes)[:: 40]:
        mesh, landmarks = meshes[key]
        expected = official.load_posed_mesh(*key)
        loaded = ours.load_posed_mesh(*key)
        assert type(loaded) is type(expected)
        np.testing.assert_array_equal(loaded.vertices, expected.vertices)
        np.testing.assert_array_equal(loaded.vertices, mesh.vertices)
        np.testing.assert_array_equal(loaded.faces, expected.faces)
        np.testing.assert_array_equal(ours.load_posed_landmarks(*key), official.load_posed_landmarks(*key))
        np.testing.assert_array_equal(ours.load_posed_landmarks(*key), landmarks)
    assert [p.name for p in zip_path.parent.iterdir()] == ["svfr_submission.zip"]  # no temporaries left


def test_a_partial_flame_topology_task_gets_the_official_findings(tmp_path):
    from nersemble_zarr.compat import SVFRSubmissionDataReader, SVFRSubmissionDataWriter

    keys = [(p, *k) for p, ks in catalogue.svfr_image_keys().items() for k in ks][:5]
    zip_path = tmp_path / "neutral.zip"
    with SVFRSubmissionDataWriter(zip_path) as writer:
        for index, key in enumerate(keys):
            writer.add_neutral_mesh(*key, flame_sized(index))  # FLAME topology: no landmarks needed
            writer.add_posed_mesh(*key, (flame_sized(index).vertices, FLAME_SIZED_FACES))  # the (vertices, faces) form
    expected = official_issues(zip_path)
    assert sorted(expected) == ["missing_neutral_meshes", "missing_posed_meshes"]
    assert len(expected["missing_neutral_meshes"]) == 386
    assert SVFRSubmissionDataReader(zip_path).validate_submission() == expected
    with zipfile.ZipFile(zip_path) as archive:
        assert not any("landmarks" in name for name in archive.namelist())


def test_findings_on_a_zip_of_problems_match_the_official_reader(tmp_path):
    from nersemble_zarr.compat import SVFRSubmissionDataReader

    keys = [(p, k) for p, ks in catalogue.svfr_image_keys().items() for k in ks]
    nan_flame = flame_sized(1).vertices.copy()
    nan_flame[7] = np.nan  # trimesh drops it and its faces: no longer FLAME-sized, so it needs landmarks
    path = tmp_path / "problems.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for index, (participant, key) in enumerate(keys):
            mesh, landmarks = tetra(index)
            archive.writestr(catalogue.svfr_mesh_entry(participant, key, "posed"), ply_bytes(mesh.vertices, TETRA_FACES))
            if index not in (3, 4, 5):
                buffer = io.BytesIO()
                np.save(buffer, landmarks if index != 6 else landmarks[:5])
                archive.writestr(catalogue.svfr_landmarks_entry(participant, key, "posed"), buffer.getvalue())
        participant, key = keys[0]
        archive.writestr(catalogue.svfr_mesh_entry(participant, key, "neutral"), ply_bytes(np.zeros((0, 3)), np.zeros((0, 3), int)))
        participant, key = keys[1]
        archive.writestr(catalogue.svfr_mesh_entry(participant, key, "neutral"), ply_bytes(nan_flame, FLAME_SIZED_FACES))
        participant, key = keys[2]
        archive.writestr(catalogue.svfr_mesh_entry(participant, key, "neutral"), ply_bytes(flame_sized(2).vertices, FLAME_SIZED_FACES))
        archive.writestr("017/notes.txt", b"not a mesh")
        archive.writestr("extra/", b"")
    expected = official_issues(path)
    assert {name: len(values) for name, values in expected.items()} == {
        "missing_posed_landmarks": 3, "wrong_posed_landmarks": 1, "missing_neutral_meshes": 388,
        "empty_neutral_meshes": 1, "missing_neutral_landmarks": 2, "unexpected_files": 1,
    }
    assert SVFRSubmissionDataReader(path).validate_submission() == expected


def test_unreadable_meshes_and_zips_without_a_task_are_reported_not_raised(tmp_path):
    from nersemble_zarr.compat import SVFRSubmissionDataReader

    participant, key = 17, catalogue.svfr_image_keys()[17][0]
    path = tmp_path / "broken.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(catalogue.svfr_mesh_entry(participant, key, "posed"), b"ply\nnot really")
    with pytest.raises(Exception):
        official_issues(path)  # the official reader fails on the file
    issues = SVFRSubmissionDataReader(path).validate_submission()
    assert len(issues["missing_posed_meshes"]) == 390
    [(entry, reason)] = issues["unreadable_files"]
    assert entry == catalogue.svfr_mesh_entry(participant, key, "posed") and entry in one_sentence(SubmissionError(reason))
    none = tmp_path / "none.zip"
    with zipfile.ZipFile(none, "w") as archive:
        archive.writestr("readme.txt", b"hello")
    expected = official_issues(none)
    assert expected["unexpected_files"] == ["readme.txt", "readme.txt"]  # the official lists it once per task
    assert SVFRSubmissionDataReader(none).validate_submission() == dict(expected, unexpected_files=["readme.txt"])
    with pytest.raises(SubmissionError, match="does not exist") as error:
        SVFRSubmissionDataReader(tmp_path / "missing.zip")
    one_sentence(error.value)


def test_a_failed_or_unclosed_writer_leaves_the_old_zip(tmp_path):
    from nersemble_zarr.compat import SVFRSubmissionDataReader, SVFRSubmissionDataWriter

    zip_path = tmp_path / "submission.zip"
    zip_path.write_bytes(b"the previous submission")
    mesh, landmarks = tetra(0)
    with pytest.raises(RuntimeError, match="reconstruction crashed"):
        with SVFRSubmissionDataWriter(zip_path) as writer:
            writer.add_posed_mesh(17, "EXP-4-lips", 6, "221501007", mesh, landmarks)
            raise RuntimeError("reconstruction crashed")
    writer = SVFRSubmissionDataWriter(zip_path)
    writer.add_posed_mesh(17, "EXP-4-lips", 6, "221501007", mesh, landmarks)
    del writer
    gc.collect()
    with pytest.raises(SubmissionError, match="No mesh was added") as error:
        with SVFRSubmissionDataWriter(zip_path):
            pass
    one_sentence(error.value)
    assert zip_path.read_bytes() == b"the previous submission"
    assert [p.name for p in tmp_path.iterdir()] == ["submission.zip"]
    writer = SVFRSubmissionDataWriter(zip_path)
    writer.add_posed_mesh(17, "EXP-4-lips", 6, "221501007", mesh, landmarks)
    writer.close()
    assert SVFRSubmissionDataReader(zip_path).has_posed_reconstructions()
    with pytest.raises(SubmissionError, match="is closed"):
        writer.add_neutral_mesh(17, "EXP-4-lips", 6, "221501007", mesh, landmarks)


@pytest.mark.parametrize(
    ("key", "mesh", "landmarks", "message"),
    [
        ((17, "EXP-4-lips", 7, "221501007"), "tetra", "tetra", "is not one of the benchmark's 391 SVFR images"),
        ((16, "EXP-4-lips", 6, "221501007"), "tetra", "tetra", "is not one of the benchmark's 391 SVFR images"),
        ((17, "EXP-4-lips", "six", "221501007"), "tetra", "tetra", "is not one of the benchmark's 391 SVFR images"),
        ((17, "EXP-4-lips", 6, "221501007"), (np.full((4, 3), np.nan), TETRA_FACES), "tetra", "NaN"),
        ((17, "EXP-4-lips", 6, "221501007"), (np.ones((4, 3)), np.zeros((0, 3), int)), "tetra", "faces have shape"),
        ((17, "EXP-4-lips", 6, "221501007"), (np.zeros((0, 3)), TETRA_FACES), "tetra", "vertices have shape"),
        ((17, "EXP-4-lips", 6, "221501007"), "tetra", None, "not FLAME's 5023, so it needs its 7 NoW landmarks"),
        ((17, "EXP-4-lips", 6, "221501007"), "tetra", np.zeros((5, 3)), r"landmarks have shape \(5, 3\)"),
        ((17, "EXP-4-lips", 6, "221501007"), [[0, 0, 0]], "tetra", "give a mesh with .vertices and .faces"),
    ],
)
def test_bad_meshes_are_one_sentence_errors_and_the_writer_goes_on(tmp_path, key, mesh, landmarks, message):
    from nersemble_zarr.compat import SVFRSubmissionDataReader, SVFRSubmissionDataWriter

    good, good_landmarks = tetra(1)
    zip_path = tmp_path / "submission.zip"
    with SVFRSubmissionDataWriter(zip_path) as writer:
        with pytest.raises(SubmissionError, match=message) as error:
            writer.add_posed_mesh(*key, good if mesh == "tetra" else mesh,
                                  good_landmarks if isinstance(landmarks, str) else landmarks)
        one_sentence(error.value)
        writer.add_posed_mesh(17, "FREE", 786, "222200038", good, good_landmarks)
        with pytest.raises(SubmissionError, match="already added") as error:
            writer.add_posed_mesh(17, "FREE", 786, "222200038", good, good_landmarks)
        one_sentence(error.value)
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
    assert names == ["017/FREE_786_222200038/mesh_posed.ply", "017/FREE_786_222200038/landmarks_posed.npy"]
    assert len(SVFRSubmissionDataReader(zip_path).validate_submission()["missing_posed_meshes"]) == 390
