"""The store's integrity (issue 22, cases 1, 5, 6, 20, 21, 22): every writer holds the store's lock, no reader
works on a half-converted sequence, an interrupt leaves a store the rerun resumes, a chunk the flags say was
written and is gone is an error on every read path, and damaged files or attributes are one sentence."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.codecs import GzipCodec

import nersemble_zarr.store as nz
from crash_campaign import cli_command, count_files
from helpers import predictions_dataset, run_cli, store_digests, write_predictions
from nersemble_zarr import catalogue, schema, storage
from nersemble_zarr.convert import convert
from nersemble_zarr.chunk_reader import frame_reader
from nersemble_zarr.errors import CorruptChunk, MissingChunk, StoreError
from nersemble_zarr.synthetic import SyntheticConfig, generate
from nersemble_zarr.torch_dataset import FrameDataset

NVS = "nvs/388/GLASSES"
MONO = "mono_flame_avatar/393/EXP-1-head"
LOST_CAMERA, LOST_CAMERA_SERIAL = 3, "222200040"  # a camera of NVS with video (flagged converted)


def _group(store: Path, path: str) -> zarr.Group:
    return zarr.open_group(store, path=path, mode="r", use_consolidated=False)


def _copy(store: Path, tmp_path: Path, name: str = "copy.zarr") -> Path:
    copy = tmp_path / name
    shutil.copytree(store, copy)
    return copy


# ------------------------------------------------------------------------------------ case 1: the writer lock
def _stop_convert_inside_a_skeleton(root: Path, store: Path) -> subprocess.Popen:
    """A real ``convert`` into a new store, stopped (SIGSTOP) just after the mono tracking arrays appeared."""
    marker = store / MONO / "expression" / "zarr.json"
    process = subprocess.Popen(cli_command("convert", root, store, "-j", "1"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        pass  # no sleep: the skeleton is written within milliseconds
    process.send_signal(signal.SIGSTOP)
    return process


def test_writers_refuse_a_store_that_convert_is_writing_and_skip_a_half_converted_sequence(
        synthetic_root, standin_dir, tmp_path):
    meshes = ["meshes", "--flame-dir", standin_dir, "--device", "cpu", "--threads", "1"]
    half_written = False
    for attempt in range(4):  # until the stop lands inside the mono skeleton (it usually does at once)
        store = tmp_path / f"attempt-{attempt}.zarr"
        process = _stop_convert_inside_a_skeleton(synthetic_root, store)
        try:
            assert process.poll() is None, "convert ended before the tracking arrays appeared"
            for args in ([meshes[0], store, *meshes[1:]], ["downsample", store, "--levels", "2"],
                         ["split", store, "-b", "nvs", "--trailing-frames", "1"]):
                result = subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=120)
                assert result.returncode == 1, (args[0], result.stderr)
                assert f"Another run writing the store {store} is running (process {process.pid})" in result.stderr
                assert "Traceback" not in result.stderr
            assert schema.VERTICES not in _group(store, MONO)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        half_written = not storage.is_skeleton_complete(_group(store, MONO))
        if half_written:
            break
    assert half_written, "no stop landed inside the skeleton of the mono sequence"
    # The killed convert left MONO half-written: readers and writers skip it and say so, nothing is flagged.
    result = subprocess.run(cli_command(meshes[0], store, *meshes[1:]), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "sequence(s) of" in result.stderr and "whose conversion is incomplete" in result.stderr
    assert schema.VERTICES not in _group(store, MONO)
    assert not _group(store, MONO).attrs.get(schema.VERTICES_COMPLETE_ATTR)
    assert MONO not in [schema.sequence_group(*key) for key in nz.sequence_keys(store)]
    with pytest.raises(StoreError, match=f"The conversion of {MONO} is incomplete"):
        nz.sequence(nz.open(store), "mono_flame_avatar", 393, "EXP-1-head")
    # The rerun of convert writes it again, and then meshes stores finite vertices.
    run_cli("convert", synthetic_root, store, "-j", "2", exit_code=0)
    result = subprocess.run(cli_command(meshes[0], store, *meshes[1:]), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    group = _group(store, MONO)
    assert group.attrs[schema.VERTICES_COMPLETE_ATTR] and np.isfinite(group[schema.VERTICES][...]).all()


# ------------------------------------------------------------------------------------ case 5: Ctrl-C in convert
@pytest.fixture(scope="module")
def longer_root(tmp_path_factory) -> tuple[Path, Path]:
    """NVS with 3 cameras of 48 frames at 1/5 resolution, so that camera tasks run long enough to interrupt,
    and its clean conversion."""
    config = SyntheticConfig(seed=0, scale=0.2, n_frames=48, nvs_participants=(388,),
                             nvs_serials=catalogue.NVS_TRAIN_SERIALS[:3], mono_participants=(),
                             mono_train_sequences=(), mono_test_sequences=(), n_points=1000, svfr_participants=())
    folder = tmp_path_factory.mktemp("longer")
    root = generate(folder / "benchmark", config)
    convert(root, folder / "clean.zarr", workers=2)
    return root, folder / "clean.zarr"


def _shards(store: Path) -> int:
    return len(list((store / NVS / schema.IMAGES).glob("c/*/*/0/0/0"))) if store.exists() else 0


@pytest.mark.parametrize("moment", ["skeleton", "first shard"])  # the second raced the camera tasks before the fix
def test_an_interrupted_first_convert_says_so_and_the_rerun_completes(longer_root, tmp_path, moment):
    root, clean = longer_root
    store = tmp_path / "new.zarr"
    reached = {"skeleton": lambda: count_files(store) >= 3, "first shard": lambda: _shards(store) >= 1}[moment]
    process = subprocess.Popen(cli_command("convert", root, store, "-j", "2"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while process.poll() is None and not reached() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert process.poll() is None, "convert ended before the moment of the interrupt"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "Interrupted; rerun the same command to resume.", stderr
    assert "failed" not in stderr and "Traceback" not in stderr and "Task was destroyed" not in stderr, stderr
    assert not store.exists() or (store / "zarr.json").is_file(), "a folder without its root metadata"
    run_cli("convert", root, store, "-j", "2", exit_code=0)
    assert store_digests(store) == store_digests(clean)


def test_an_interrupt_before_zarr_schedules_a_coroutine_still_ends_on_the_one_line():
    """An interrupt can land after zarr made a coroutine and before its loop runs it (CI saw it in the test above):
    Python's "was never awaited" warning at exit must not follow the line."""
    script = textwrap.dedent("""
        import click
        from nersemble_zarr.cli.options import handle_errors

        async def write_a_chunk():
            pass

        @click.command()
        @handle_errors
        def convert():
            unscheduled = write_a_chunk()
            raise KeyboardInterrupt

        convert()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip().splitlines() == ["Interrupted; rerun the same command to resume."], result.stderr


# ------------------------------------------------------------------------------------ case 6: lost chunks
def _shard(store: Path, group: str, variable: str, index: tuple[int, ...]) -> Path:
    array = zarr.open_array(store, path=f"{group}/{variable}", mode="r")
    per_file = array.shards or array.chunks
    coords = tuple(i // n for i, n in zip(index, per_file)) + (0,) * (array.ndim - len(index))
    return store / group / variable / array.metadata.encode_chunk_key(coords)


LOST = {  # variable kind -> (group, variable, leading index of a chunk the flags say was written, named as)
    "images": (NVS, schema.IMAGES, (LOST_CAMERA, 0), "for camera 222200040 at timestep 0"),
    "alpha": (NVS, schema.ALPHA, (LOST_CAMERA, 0), "for camera 222200040 at timestep 0"),
    "camera coordinate": (NVS, schema.WORLD_2_CAM, (0,), "at index (0, 0, 0)"),
    "point cloud": (NVS, schema.POINTS, (0,), "at index (0, 0, 0)"),
    "tracking": (MONO, "expression", (0,), "at timestep 0"),
}


@pytest.mark.parametrize("kind", list(LOST))
def test_a_lost_chunk_is_an_error_on_every_read_path(converted, tmp_path, kind):
    group, variable, index, named = LOST[kind]
    store = _copy(converted, tmp_path)
    _shard(store, group, variable, index).unlink()
    expected = re.escape(f"The store {store} has lost a chunk it says was written: {group}/{variable} {named}")
    for open_tree in (lambda: nz.open(store), lambda: nz.open(store, dask=False)):  # dask and xarray's own arrays
        with pytest.raises(MissingChunk, match=expected):
            open_tree()
    for dask in (True, False):  # the store layer's Datasets
        with pytest.raises(MissingChunk, match=expected):
            storage.open_dataset(store, group, dask=dask)
    with pytest.raises(MissingChunk, match=expected):
        FrameDataset(store, group.split("/")[0])
    info = run_cli("info", store, exit_code=0).output
    assert f"/{group}  [LOST DATA]" in info and "has lost a chunk it says was written" in info


def test_a_chunk_lost_after_opening_is_an_error_of_the_direct_reader(converted, tmp_path):
    store = _copy(converted, tmp_path)
    dataset = nz.sequence(nz.open(store), "nvs", 388)
    serial, timestep = str(dataset[schema.SERIAL].values[LOST_CAMERA]), int(dataset[schema.TIMESTEP].values[2])
    assert nz.frame(dataset, serial, timestep).any()
    loader = FrameDataset(store, "nvs")
    item = next(i for i in range(len(loader)) if loader.item_key(i)[1:] == (serial, timestep))
    backend = xr.open_datatree(store, engine="nersemble", chunks=None)[NVS].to_dataset()  # the direct xarray engine
    _shard(store, NVS, schema.IMAGES, (LOST_CAMERA, 0)).unlink()
    message = f"{NVS}/images for camera {serial} at timestep {timestep}"
    with pytest.raises(MissingChunk, match=message):
        nz.frame(dataset, serial, timestep)
    with pytest.raises(MissingChunk, match=message):
        loader[item]
    with pytest.raises(MissingChunk, match=f"{NVS}/images for camera {serial}"):
        backend[schema.IMAGES].isel({schema.SERIAL: LOST_CAMERA, schema.TIMESTEP: 2}).values


def test_a_frame_never_written_is_an_error_not_a_black_frame(converted):
    dataset = nz.sequence(nz.open(converted), "nvs", 388)
    hold_out = str(nz.hold_out_cameras(dataset)[schema.SERIAL].values[0])
    with pytest.raises(StoreError, match=f"No frame for camera '{hold_out}' at timestep 0: its frames were never"):
        nz.frame(dataset, hold_out, int(dataset[schema.TIMESTEP].values[0]))


def test_lost_meshes_and_svfr_images_are_errors(mesh_input, standin_dir, svfr_store, tmp_path):
    meshes = _copy(mesh_input, tmp_path, "meshes.zarr")
    run_cli("meshes", meshes, "--flame-dir", standin_dir, "--device", "cpu", "--threads", "1", exit_code=0)
    group = "mono_flame_avatar/393/EXP-1-head"
    _shard(meshes, group, schema.VERTICES, (32,)).unlink()
    timestep = int(_group(meshes, group)[schema.TIMESTEP][32])
    with pytest.raises(MissingChunk, match=f"{group}/vertices at timestep {timestep} "):
        storage.open_dataset(meshes, group)
    svfr = _copy(svfr_store, tmp_path, "svfr.zarr")
    _shard(svfr, "svfr/17", schema.IMAGES, (0,)).unlink()
    with pytest.raises(MissingChunk, match="svfr/17/images for the image "):
        nz.open(svfr)


def _prediction_of(store: Path, tmp_path: Path) -> Path:
    """A predictions store holding the clean frames of the lost camera."""
    dataset = nz.sequence(nz.open(store), "nvs", 388)
    serial = str(dataset[schema.SERIAL].values[LOST_CAMERA])
    images = dataset[schema.IMAGES].sel({schema.SERIAL: serial}).values
    return write_predictions(tmp_path / "pred.zarr", {NVS: predictions_dataset([serial], images[None])})


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_export_frames_and_evaluate_refuse_a_damaged_shard_instead_of_writing_black(converted, tmp_path, damage):
    predictions = _prediction_of(converted, tmp_path)
    store = _copy(converted, tmp_path)
    shard = _shard(store, NVS, schema.IMAGES, (LOST_CAMERA, 0))
    if damage == "deleted":
        shard.unlink()
        expected = "has lost a chunk it says was written"
    else:
        os.truncate(shard, shard.stat().st_size // 2)
        expected = f"The shard {shard} is corrupt"  # its index, read from the new end, fails its checksum
    out = tmp_path / "export"
    result = run_cli("export-frames", store, out, "-p", "388", exit_code=1)
    assert expected in result.output and result.output.count("\n") == 1, result.output
    assert not list(out.rglob(f"*{LOST_CAMERA_SERIAL}*.png")), "a PNG of the damaged camera was written"
    result = run_cli("evaluate", predictions, "--store", store, "-b", "nvs", "--no-jod", "--no-lpips", "-j", "1",
                     exit_code=1)
    assert expected in result.output, result.output


# ------------------------------------------------------------------------------------ case 21: damaged attributes
@pytest.mark.parametrize("where, name, value", [
    ("", schema.FORMAT_ATTR, [1]), ("", schema.BENCHMARKS_ATTR, 7), (NVS, schema.VIDEO_SERIALS_ATTR, 5),
    (NVS, schema.HEIGHT_ATTR, "160"),
])
def test_attributes_of_the_wrong_type_are_one_sentence(converted, tmp_path, where, name, value):
    store = _copy(converted, tmp_path)
    zarr.open_group(store, path=where, mode="r+", use_consolidated=False).attrs[name] = value
    zarr.consolidate_metadata(store)
    sentence = f"its attribute {name!r} holds {value!r}, not"
    for args in (["info", store], ["export-frames", store, tmp_path / "out", "-p", "388"]):
        result = run_cli(*args, exit_code=1)
        assert sentence in result.output, (args[0], result.output)
    if not where:
        assert sentence in run_cli("split", store, "-b", "nvs", "--trailing-frames", "1", exit_code=1).output
    with pytest.raises(StoreError, match=re.escape(sentence)):
        nz.open(store)


# ------------------------------------------------------------------------------------ case 22: a symlink loop
def test_convert_into_a_symlink_loop_is_one_sentence(synthetic_root, tmp_path):
    loop = tmp_path / "loop.zarr"
    loop.symlink_to(loop)
    result = run_cli("convert", synthetic_root, loop, exit_code=1)
    assert f"{loop} is not a zarr store: it is a symbolic link that leads in a loop" in result.output
    assert loop.is_symlink() and json.dumps(sorted(os.listdir(tmp_path))) == '["loop.zarr"]'


def test_a_damaged_chunk_that_zarr_reads_is_a_corrupt_chunk(tmp_path):
    """Codecs without the direct path (here gzip) are read by zarr; a truncated chunk is one StoreError there too."""
    array = zarr.create_array(tmp_path / "gzip.zarr", shape=(1, 2, 8, 8, 3), chunks=(1, 1, 8, 8, 3), dtype="uint8",
                              compressors=[GzipCodec()], dimension_names=("serial", "timestep", "y", "x", "channel"))
    array[...] = np.arange(array.size, dtype=np.uint64).reshape(array.shape) % 251
    chunk = tmp_path / "gzip.zarr" / array.metadata.encode_chunk_key((0, 1, 0, 0, 0))
    os.truncate(chunk, chunk.stat().st_size // 2)
    read = frame_reader(zarr.open_array(tmp_path / "gzip.zarr", mode="r"))
    assert read((0, 0)).shape == (8, 8, 3)
    with pytest.raises(CorruptChunk, match=r"Frame \(0, 1\) of .*gzip.zarr.* could not be read"):
        read((0, 1))
