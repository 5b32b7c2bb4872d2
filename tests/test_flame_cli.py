"""``nersemble-zarr meshes`` and ``export-mesh`` on small real zarr v3 stores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from helpers import run_cli
from nersemble_zarr import schema
from nersemble_zarr.flame.lbs import FlameModel
from nersemble_zarr.flame.model import MODEL_FILE
from nersemble_zarr.flame.sequence import sequence_landmarks, sequence_vertices
from nersemble_zarr.flame.standin import write_standin_flame
from nersemble_zarr.store import consolidate, prepare_store
from nersemble_zarr.flame.store import CHUNK_TIMESTEPS, COMPLETE_ATTR, find_flame_sequences, write_sequence_meshes
from test_flame_support import sequence_dataset

SEQUENCES = {(393, "EXP-1-head"): 70, (404, "FREE"): 20}


@pytest.fixture
def store(tmp_path):
    """A zarr v3 store with two mono sequences with tracking, one NVS sequence without, and consolidated metadata."""
    path = tmp_path / "nersemble.zarr"
    prepare_store(path)
    for index, ((participant, sequence), n_timesteps) in enumerate(SEQUENCES.items()):
        ds = sequence_dataset(n_timesteps, seed=index)
        ds.attrs[schema.CONVERTED_ATTR] = True  # as convert leaves it: readers skip half-converted sequences
        ds.to_zarr(path, group=schema.sequence_group("mono_flame_avatar", participant, sequence),
                   zarr_format=3, consolidated=False)
    xr.Dataset(coords={schema.SERIAL: ["222200037"]}, attrs={schema.CONVERTED_ATTR: True}).to_zarr(
        path, group=schema.sequence_group("nvs", 388, "GLASSES"), zarr_format=3, consolidated=False)
    consolidate(path)
    return path


def chunk_files(store, participant, sequence):
    folder = store / schema.sequence_group("mono_flame_avatar", participant, sequence) / schema.VERTICES / "c"
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def test_meshes_writes_vertices_landmarks_and_faces_then_skips_complete_sequences(store, standin_dir, cpu_model):
    result = run_cli("meshes", store, "--flame-dir", standin_dir, "--device", "cpu", "--batch-size", "40")
    assert result.exit_code == 0, result.output
    assert "2 sequence(s) with FLAME tracking, 0 already complete" in result.output
    tree = xr.open_datatree(store, engine="zarr")  # through the (refreshed) consolidated metadata
    for (participant, sequence), n_timesteps in SEQUENCES.items():
        stored = tree[schema.sequence_group("mono_flame_avatar", participant, sequence)].to_dataset()
        assert stored.attrs[COMPLETE_ATTR] is True and "NOT FLAME" in stored.attrs["vertices_flame_model"]
        assert stored[schema.VERTICES].dims == (schema.TIMESTEP, schema.VERTEX, schema.XYZ)
        assert stored[schema.LANDMARKS].dims == (schema.TIMESTEP, schema.LANDMARK, schema.XYZ)
        assert stored[schema.FACES].dtype == np.int32 and stored[schema.FACES].shape == (9976, 3)
        assert stored[schema.VERTICES].encoding["chunks"] == (CHUNK_TIMESTEPS, 5023, 3)
        np.testing.assert_allclose(
            stored[schema.VERTICES].values, sequence_vertices(stored, cpu_model).values, atol=1e-6)
        np.testing.assert_allclose(stored[schema.LANDMARKS].values, sequence_landmarks(stored, cpu_model).values,
                                   atol=1e-6)
        np.testing.assert_array_equal(stored[schema.FACES].values, cpu_model.faces)
    before = chunk_files(store, 393, "EXP-1-head")
    again = run_cli("meshes", store, "--flame-dir", standin_dir, "--device", "cpu")
    assert again.exit_code == 0 and "2 already complete" in again.output
    assert chunk_files(store, 393, "EXP-1-head") == before


def test_an_interrupted_sequence_resumes_without_rewriting_finished_chunks(store, standin_dir, cpu_model):
    target = find_flame_sequences(store, [393])[0]

    def interrupt_after_first_region(done: int) -> None:  # called after each region is written
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_sequence_meshes(
            store, target, cpu_model, batch_size=CHUNK_TIMESTEPS, progress=interrupt_after_first_region)
    group = zarr.open_group(store, path=target.path, use_consolidated=False)
    assert group.attrs[COMPLETE_ATTR] is False
    written = chunk_files(store, 393, "EXP-1-head")
    assert len(written) == 1  # one chunk of 32 timesteps made it before the interruption

    progress = []
    assert write_sequence_meshes(store, target, cpu_model, batch_size=CHUNK_TIMESTEPS, progress=progress.append)
    assert progress[0] == CHUNK_TIMESTEPS and sum(progress) == target.n_timesteps  # found, then the rest
    after = chunk_files(store, 393, "EXP-1-head")
    assert len(after) == 3 and all(after[path] == mtime for path, mtime in written.items())
    stored = xr.open_zarr(store, group=target.path, consolidated=False)
    assert stored.attrs[COMPLETE_ATTR] is True
    np.testing.assert_allclose(stored[schema.VERTICES].values, sequence_vertices(stored, cpu_model).values, atol=1e-6)


@pytest.fixture
def restore_torch_threads():
    """--threads sets torch's process-wide thread count; put it back for the tests that follow."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_another_model_restarts_an_interrupted_sequence_and_is_reported_when_complete(
    store, standin_dir, cpu_model, tmp_path
):
    target = find_flame_sequences(store, [393])[0]

    def interrupt(done: int) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_sequence_meshes(store, target, cpu_model, batch_size=CHUNK_TIMESTEPS, progress=interrupt)
    other_dir = tmp_path / "other_standin"
    write_standin_flame(other_dir, seed=1)
    progress = []
    assert write_sequence_meshes(store, target, FlameModel.load(other_dir, "cpu"), progress=progress.append)
    assert progress[0] == 0  # nothing kept from the first model
    result = run_cli("meshes", store, "-p", 393, "--flame-dir", standin_dir, "--device", "cpu")
    assert result.exit_code == 0 and "1 complete sequence(s) were made with another model" in result.output


def test_meshes_selects_participants_and_sequences(store, standin_dir, restore_torch_threads):
    result = run_cli("meshes", store, "-p", "404", "--sequence", "FREE", "--flame-dir", standin_dir, "--device", "cpu",
                 "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "1 sequence(s)" in result.output and torch.get_num_threads() == 1
    assert [group.complete for group in find_flame_sequences(store)] == [False, True]


def test_overwrite_recomputes_a_complete_sequence(store, standin_dir):
    assert run_cli("meshes", store, "-p", "404", "--flame-dir", standin_dir, "--device", "cpu").exit_code == 0
    before = chunk_files(store, 404, "FREE")
    result = run_cli("meshes", store, "-p", "404", "--flame-dir", standin_dir, "--device", "cpu", "--overwrite")
    assert result.exit_code == 0 and "0 already complete" in result.output
    assert chunk_files(store, 404, "FREE").keys() == before.keys()
    assert all(chunk_files(store, 404, "FREE")[path] != mtime for path, mtime in before.items())


@pytest.mark.parametrize("args, message", [
    (["-p", "999"], "no sequence with FLAME tracking for participant 999"),
    (["--sequence", "GLASSES"], "no FLAME tracking for sequence 'GLASSES'"),
])
def test_unknown_selection_is_one_line_error(store, standin_dir, args, message):
    result = run_cli("meshes", store, *args, "--flame-dir", standin_dir)
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_missing_model_is_one_line_error(store, tmp_path):
    result = run_cli("meshes", store, "--flame-dir", tmp_path / "no_flame")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert str(tmp_path / "no_flame" / MODEL_FILE) in result.output and "flame.is.tue.mpg.de" in result.output
    assert not find_flame_sequences(store)[0].complete


def test_missing_or_foreign_store_is_one_line_error(tmp_path, standin_dir):
    result = run_cli("meshes", tmp_path / "absent.zarr", "--flame-dir", standin_dir)
    assert result.exit_code != 0 and "does not exist" in result.output and "Traceback" not in result.output
    zarr.open_group(tmp_path / "foreign.zarr", mode="w", zarr_format=3)
    result = run_cli("meshes", tmp_path / "foreign.zarr", "--flame-dir", standin_dir)
    assert result.exit_code != 0 and "not one written by nersemble_zarr" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_gpu_is_one_line_error(store, standin_dir):
    result = run_cli("meshes", store, "--flame-dir", standin_dir, "--device", "cuda")
    assert result.exit_code != 0 and "no CUDA GPU" in result.output and "Traceback" not in result.output


def _read_obj(path):
    vertices, faces = [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            vertices.append([float(value) for value in line.split()[1:]])
        elif line.startswith("f "):
            faces.append([int(value) - 1 for value in line.split()[1:]])
    return np.array(vertices), np.array(faces)


def test_export_mesh_writes_readable_ply_and_obj(store, standin_dir, cpu_model, tmp_path):
    import open3d as o3d

    group = schema.sequence_group("mono_flame_avatar", 393, "EXP-1-head")
    ds = xr.open_zarr(store, group=group, consolidated=False)
    frame = int(ds[schema.TIMESTEP].values[5])
    expected = sequence_vertices(ds.sel({schema.TIMESTEP: [frame]}), cpu_model).values[0]
    common = ["-p", 393, "-s", "EXP-1-head", "-t", frame, "--flame-dir", standin_dir, "--device", "cpu"]

    evaluated = run_cli("export-mesh", store, *common, "-o", tmp_path / "before.obj")  # no stored vertices yet
    assert evaluated.exit_code == 0, evaluated.output
    vertices, faces = _read_obj(tmp_path / "before.obj")
    np.testing.assert_allclose(vertices, expected, atol=1e-6)
    np.testing.assert_array_equal(faces, cpu_model.faces)

    assert run_cli("meshes", store, "-p", 393, "--flame-dir", standin_dir, "--device", "cpu").exit_code == 0
    stored = run_cli("export-mesh", store, *common[:6], "--flame-dir", tmp_path / "no_model_needed",
                 "-o", tmp_path / "after.ply")
    assert stored.exit_code == 0, stored.output
    mesh = o3d.io.read_triangle_mesh(str(tmp_path / "after.ply"))
    np.testing.assert_allclose(np.asarray(mesh.vertices), expected, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(mesh.triangles), cpu_model.faces)
    assert sorted(path.name for path in tmp_path.iterdir() if path.suffix in (".ply", ".obj", ".part")) == [
        "after.ply", "before.obj"]


@pytest.mark.parametrize("args, message", [
    (["-t", "4"], "Timestep 4 is not in"),
    (["-t", "3", "-o", "mesh.stl"], "expected a file name ending in .ply or .obj"),
])
def test_export_mesh_errors_are_one_line_and_write_nothing(store, standin_dir, tmp_path, args, message):
    output = ["-o", tmp_path / "mesh.ply"] if "-o" not in args else []
    result = run_cli("export-mesh", store, "-p", 393, "-s", "EXP-1-head", "--flame-dir", standin_dir, *args, *output)
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
    assert not list(tmp_path.glob("mesh.*"))
