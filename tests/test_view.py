"""``nersemble-zarr view`` / ``nersemble_zarr.view``: the recording is read back with Rerun's own reader
(``rerun.chunk.RrdReader``) and compared with the store: cameras, frames, alpha, FLAME meshes, point clouds,
SVFR images; ``--serve`` stays on 127.0.0.1; a headless Chromium renders the served viewer."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from browser import chromium, screenshot
from helpers import run_cli
from nersemble_zarr import schema, storage
from nersemble_zarr import store as nz

rr = pytest.importorskip("rerun", reason="rerun-sdk is the `view` extra: pip install 'nersemble_zarr[view]'")
from PIL import Image  # noqa: E402 - a dependency of rerun-sdk

from nersemble_zarr.view import log_sequence, serve_web  # noqa: E402

NVS, MONO = (388, "GLASSES"), (393, "EXP-1-head")
RDF = [3, 2, 5]  # Rerun's ViewCoordinates: Right=3, Down=2, Forward=5 (OpenCV's camera axes)
READY_JS = ("(() => { const c = document.getElementById('the_canvas_id'); "
            "return !!c && c.classList.contains('visible'); })()")


@pytest.fixture(scope="module")
def viewed(converted: Path, standin_dir: Path, tmp_path_factory) -> Path:
    """The converted tiny store with stored FLAME meshes (stand-in model) and resolution level 2."""
    store = tmp_path_factory.mktemp("view") / "store.zarr"
    shutil.copytree(converted, store)
    run_cli("meshes", store, "-s", MONO[1], "--flame-dir", standin_dir, "--device", "cpu", exit_code=0)
    run_cli("downsample", store, "--levels", "2", exit_code=0)
    return store


def read_recording(path: Path) -> tuple[dict[str, dict], dict[str, dict[int, dict]]]:
    """The recording's static rows by entity path, and its rows per entity and ``timestep`` (column -> value)."""
    static: dict[str, dict] = defaultdict(dict)
    temporal: dict[str, dict[int, dict]] = defaultdict(dict)
    for chunk in rr.chunk.RrdReader(path).stream():
        batch = chunk.to_record_batch().to_pydict()
        for row in range(chunk.num_rows):
            values = {name: column[row] for name, column in batch.items()}
            if chunk.is_static:
                static[chunk.entity_path].update(values)
            else:
                temporal[chunk.entity_path].setdefault(values["timestep"], {}).update(values)
    return static, temporal


def column_major(values: list[float], size: int) -> np.ndarray:
    """A Rerun matrix (stored column after column) as a numpy matrix."""
    return np.asarray(values, dtype=np.float64).reshape(size, size).T


def decoded(row: dict, component: str = "EncodedImage:blob") -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(bytes(row[component][0]))))


def test_the_recording_holds_every_camera_at_the_store_pose_and_intrinsics_and_the_frames(viewed, tmp_path):
    output = tmp_path / "nvs.rrd"
    run_cli("view", viewed, "-b", "nvs", "-p", NVS[0], "--level", "2", "--save", output, exit_code=0)
    static, temporal = read_recording(output)
    full = nz.sequence(nz.open(viewed), "nvs", NVS[0])
    level = storage.open_dataset(viewed, schema.level_group(2, "nvs", *NVS), dask=False)
    height, width = level.attrs[schema.HEIGHT_ATTR], level.attrs[schema.WIDTH_ATTR]
    assert (height, width) != (full.attrs[schema.HEIGHT_ATTR], full.attrs[schema.WIDTH_ATTR])
    serials = [str(serial) for serial in full[schema.SERIAL].values]
    assert {f"/world/cameras/{serial}" for serial in serials} <= set(static)
    colours = defaultdict(set)
    for serial in serials:
        camera = static[f"/world/cameras/{serial}"]
        np.testing.assert_allclose(column_major(camera["Pinhole:image_from_camera"][0], 3),
                                   level[schema.INTRINSICS].sel(serial=serial).values, rtol=1e-6)
        assert camera["Pinhole:resolution"][0] == [width, height]
        assert camera["Pinhole:camera_xyz"][0] == RDF
        pose = np.linalg.inv(full[schema.WORLD_2_CAM].sel(serial=serial).values)
        np.testing.assert_allclose(column_major(camera["Transform3D:mat3x3"][0], 3), pose[:3, :3], atol=1e-6)
        np.testing.assert_allclose(camera["Transform3D:translation"][0], pose[:3, 3], atol=1e-6)
        colours[str(full[schema.SPLIT].sel(serial=serial).values)].add(camera["Pinhole:color"][0])
    assert len(colours["train"]) == len(colours["test"]) == 1 and colours["train"] != colours["test"]

    with_frames = [s for s, done in zip(serials, storage.written_cameras(level)) if done]
    images = {path.split("/")[-2] for path in temporal if path.endswith("/image")}
    assert images == set(with_frames) and len(with_frames) >= 2
    timesteps = [int(t) for t in full[schema.TIMESTEP].values]
    serial = with_frames[0]
    for timestep in timesteps[:: len(timesteps) - 1]:
        stored = level[schema.IMAGES].sel(serial=serial, timestep=timestep).values
        frame = decoded(temporal[f"/world/cameras/{serial}/image"][timestep])
        assert frame.shape == stored.shape == (height, width, 3)
        assert np.abs(frame.astype(int) - stored).mean() < 4  # JPEG quality 90
        mask = temporal[f"/world/cameras/{serial}/alpha"][timestep]
        alpha = level[schema.ALPHA].sel(serial=serial, timestep=timestep).values
        np.testing.assert_array_equal(np.asarray(mask["SegmentationImage:buffer"][0], np.uint8).reshape(alpha.shape),
                                      alpha >= 128)
    for path in [f"/world/cameras/{s}/image" for s in with_frames]:
        assert sorted(temporal[path]) == timesteps

    cloud_timesteps = [int(t) for t in full[schema.POINTCLOUD_TIMESTEP].values]
    assert sorted(temporal["/world/pointcloud"]) == cloud_timesteps
    first = full.isel({schema.POINTCLOUD_TIMESTEP: 0})
    count = int(first[schema.POINT_COUNT].values)
    np.testing.assert_allclose(temporal["/world/pointcloud"][cloud_timesteps[0]]["Points3D:positions"],
                               first[schema.POINTS].values[:count], rtol=1e-6)


def test_the_mesh_of_every_timestep_is_the_stored_one_with_its_faces(viewed, tmp_path):
    output = tmp_path / "mono.rrd"
    run_cli("view", viewed, "-b", "mono_flame_avatar", "-p", MONO[0], "-s", MONO[1], "--save", output, exit_code=0)
    static, temporal = read_recording(output)
    dataset = nz.sequence(nz.open(viewed, dask=False), "mono_flame_avatar", *MONO)
    faces = dataset[schema.FACES].values
    assert len(static["/world/flame/mesh"]["Mesh3D:triangle_indices"]) == len(faces)
    np.testing.assert_array_equal(static["/world/flame/mesh"]["Mesh3D:triangle_indices"], faces)
    meshes = temporal["/world/flame/mesh"]
    timesteps = [int(t) for t in dataset[schema.TIMESTEP].values]
    assert sorted(meshes) == timesteps
    for index, timestep in enumerate(timesteps):
        vertices = meshes[timestep]["Mesh3D:vertex_positions"]
        assert len(vertices) == dataset.sizes[schema.VERTEX]
        np.testing.assert_array_equal(vertices[100 + index], dataset[schema.VERTICES].values[index, 100 + index])
        landmarks = temporal["/world/flame/landmarks"][timestep]["Points3D:positions"]
        np.testing.assert_array_equal(landmarks, dataset[schema.LANDMARKS].values[index])
    train = [s for s, split in zip(dataset[schema.SERIAL].values, dataset[schema.SPLIT].values) if split == "train"]
    assert {p for p in temporal if p.endswith("/image")} == {f"/world/cameras/{s}/image" for s in train}


def test_without_stored_meshes_a_flame_folder_evaluates_them(converted, standin_dir, tmp_path):
    from nersemble_zarr.flame import FlameModel, sequence_vertices

    dataset = nz.sequence(nz.open(converted, dask=False), "mono_flame_avatar", *MONO)
    assert schema.VERTICES not in dataset
    chosen = [int(t) for t in dataset[schema.TIMESTEP].values[2:4]]
    output = tmp_path / "evaluated.rrd"
    run_cli("view", converted, "-b", "mono_flame_avatar", "-p", MONO[0], "-s", MONO[1], "-t",
            f"{chosen[0]}:{chosen[1] + 1}", "--flame-dir", standin_dir, "--save", output, exit_code=0)
    _, temporal = read_recording(output)
    expected = sequence_vertices(dataset.sel(timestep=chosen), FlameModel.load(standin_dir, device="cpu")).values
    assert sorted(temporal["/world/flame/mesh"]) == chosen
    np.testing.assert_allclose(temporal["/world/flame/mesh"][chosen[1]]["Mesh3D:vertex_positions"], expected[1],
                               atol=1e-6)


def test_timesteps_and_cameras_narrow_what_the_python_api_logs(viewed, tmp_path):
    dataset = nz.sequence(nz.open(viewed), "nvs", NVS[0])
    serial = str(dataset[schema.SERIAL].values[storage.written_cameras(dataset).argmax()])
    output = tmp_path / "narrow.rrd"
    recording = rr.RecordingStream("test", recording_id="narrow")
    recording.save(output)
    log_sequence(dataset, recording, timesteps=slice(3, 13, 2), cameras=[serial], image_format="png")
    recording.flush()
    recording.disconnect()
    static, temporal = read_recording(output)
    assert [path for path in static if path.startswith("/world/cameras/")] == [f"/world/cameras/{serial}"]
    row = temporal[f"/world/cameras/{serial}/image"]
    assert sorted(row) == [3, 9]  # timesteps 3, 6, 9, 12 lie in 3 <= t < 13; every second one
    np.testing.assert_array_equal(decoded(row[9]), nz.frame(dataset, serial, 9))  # PNG: lossless


def test_svfr_images_are_logged_under_their_keys(svfr_store, tmp_path):
    output = tmp_path / "svfr.rrd"
    run_cli("view", svfr_store, "-b", "svfr", "-p", "17", "--image-format", "png", "--save", output, exit_code=0)
    static, _ = read_recording(output)
    dataset = nz.svfr_images(nz.open(svfr_store), 17)
    keys = list(zip(dataset[schema.SVFR_SEQUENCE].values, dataset[schema.TIMESTEP].values,
                    dataset[schema.SERIAL].values))
    names = [f"{sequence}_{int(timestep)}_{serial}" for sequence, timestep, serial in keys]
    assert any("+" in name for name in names)  # e.g. EMO-1-shout+laugh: escaped in the entity path
    paths = {f"/svfr/17/{rr.escape_entity_path_part(name)}": name for name in names}
    assert {path for path in static if path.startswith("/svfr/")} == set(paths)
    assert {static[path]["key"][0] for path in paths} == set(names)
    sequence, timestep, serial = keys[-1]
    row = static[f"/svfr/17/{rr.escape_entity_path_part(names[-1])}"]
    np.testing.assert_array_equal(decoded(row), nz.svfr_image(dataset, str(sequence), int(timestep), str(serial)))


@pytest.mark.parametrize("sequence, level", [("EMO-1-shout+laugh", 4), ("EXP-1-head", 1)])
def test_a_dataset_sequence_shows_its_cameras_and_frames_at_its_level(dataset_store, tmp_path, sequence, level):
    """A dataset group (the level-4-only corrected sequence, and a full-resolution one): every camera at the store's
    pose and intrinsics, no split (the dataset has no hold-out), every frame as stored (PNG: lossless)."""
    output = tmp_path / "dataset.rrd"
    run_cli("view", dataset_store, "-b", "dataset", "-p", "18", "-s", sequence, "--level", level,
            "--image-format", "png", "--save", output, exit_code=0)
    static, temporal = read_recording(output)
    stored = nz.sequence(nz.open(dataset_store), "dataset", 18, sequence, level=level)
    height, width = stored.attrs[schema.HEIGHT_ATTR], stored.attrs[schema.WIDTH_ATTR]
    serials = [str(serial) for serial in stored[schema.SERIAL].values]
    colours = set()
    for serial in serials:
        camera = static[f"/world/cameras/{serial}"]
        np.testing.assert_allclose(column_major(camera["Pinhole:image_from_camera"][0], 3),
                                   stored[schema.INTRINSICS].sel(serial=serial).values, rtol=1e-6)
        assert camera["Pinhole:resolution"][0] == [width, height]
        pose = np.linalg.inv(stored[schema.WORLD_2_CAM].sel(serial=serial).values)
        np.testing.assert_allclose(column_major(camera["Transform3D:mat3x3"][0], 3), pose[:3, :3], atol=1e-6)
        np.testing.assert_allclose(camera["Transform3D:translation"][0], pose[:3, 3], atol=1e-6)
        assert "split" not in camera
        colours.add(camera["Pinhole:color"][0])
    assert len(colours) == 1  # no hold-out camera
    assert {path for path in temporal if path.startswith("/world/")} == {f"/world/cameras/{s}/image" for s in serials}
    for serial in serials:
        frames = temporal[f"/world/cameras/{serial}/image"]
        assert sorted(frames) == [int(t) for t in stored[schema.TIMESTEP].values]
        for timestep, row in frames.items():
            np.testing.assert_array_equal(decoded(row), nz.frame(stored, serial, timestep))


@pytest.mark.parametrize("args, code, message", [
    (["-b", "nvs", "-p", "388", "--level", "8"], 1, "has no resolution level 8"),
    (["-b", "nvs", "-p", "388", "-t", "x:y"], 2, "is not of the form a:b:step"),
    (["-b", "nvs", "-p", "388", "-t", "1000:2000"], 2, "No timestep of this sequence lies in 1000:2000"),
    (["-b", "nvs", "-p", "388", "-c", "999"], 2, "Camera '999' is not in this sequence"),
    (["-b", "nvs", "-p", "388", "--save", "out.txt"], 2, "does not end in .rrd"),
    (["-b", "nvs", "-p", "388", "--serve", "--spawn"], 2, "Choose one of --save, --serve and --spawn"),
    (["-b", "nvs", "-p", "17"], 2, "Unknown participant"),
    (["-b", "svfr", "-p", "17", "--level", "2"], 2, "SVFR images have no sequence"),
    (["-b", "dataset", "-p", "17"], 2, "A dataset participant has many sequences; name one with -s."),
    (["-b", "dataset", "-p", "17", "-s", "EXP-1-head"], 1, "The store has no sequence dataset/17/EXP-1-head"),
])
def test_bad_requests_are_one_sentence_and_leave_nothing(converted, svfr_store, tmp_path, monkeypatch, args, code,
                                                        message):
    store = svfr_store if "svfr" in args else converted
    monkeypatch.chdir(tmp_path)
    result = run_cli("view", store, *args, exit_code=code)
    assert message in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_without_rerun_sdk_the_command_names_the_extra_and_help_stays_light(converted):
    blocked = ("import sys; sys.modules['rerun'] = None; from nersemble_zarr.cli.main import main; "
               f"main(['view', {str(converted)!r}, '-b', 'nvs', '-p', '388'])")
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: The viewer needs rerun-sdk, which is not installed; install it with "
        "pip install 'nersemble_zarr[view]'."]
    helped = ("import sys\nfrom nersemble_zarr.cli.main import main\ntry:\n    main(['view', '--help'])\n"
              "except SystemExit:\n    pass\nprint('rerun' in sys.modules, 'xarray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", helped], capture_output=True, text=True, timeout=120)
    assert "--serve" in done.stdout and done.stdout.strip().splitlines()[-1] == "False False"


def test_serve_listens_on_loopback_only_with_analytics_off_and_a_content_security_policy(viewed, tmp_path):
    import psutil

    home = tmp_path / "home"
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local")}
    command = [sys.executable, "-m", "nersemble_zarr", "view", str(viewed), "-b", "nvs", "-p", "388", "--level", "2",
               "-t", "0:4", "--serve"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("Serving nvs/388/GLASSES at http://127.0.0.1:"), (line, process.stderr.read())
        url = line.split(" at ")[1].split(" ")[0]
        page = urllib.request.urlopen(url, timeout=30)
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "connect-src 'self' blob: data: http://127.0.0.1:" in policy
        assert b"re_viewer" in page.read()
        assert urlparse(url).hostname == "127.0.0.1"
        listening = [connection.laddr.ip for child in psutil.Process(process.pid).children(recursive=True)
                     for connection in child.net_connections(kind="inet") if connection.status == "LISTEN"]
        listening += [connection.laddr.ip for connection in psutil.Process(process.pid).net_connections(kind="inet")
                      if connection.status == "LISTEN"]
        assert len(listening) >= 3 and set(listening) == {"127.0.0.1"}  # web page, gRPC, our proxy
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    assert process.returncode == 0, process.stderr.read()
    assert not (home / ".config" / "rerun").exists()  # the user's Rerun settings untouched (a private one was used)


@pytest.mark.slow
def test_headless_chromium_renders_the_served_viewer_without_leaving_the_machine(viewed, tmp_path):
    if chromium() is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); the web viewer was not rendered")
    output = tmp_path / "view.rrd"
    run_cli("view", viewed, "-b", "nvs", "-p", "388", "--level", "2", "--save", output, exit_code=0)
    shot = tmp_path / "viewer.png"
    with serve_web(output) as served:
        page = screenshot(served.url, shot, ready_js=READY_JS, settle_s=8)
    if not (page["webgl2"] or page["webgpu"]):
        pytest.skip(f"headless Chromium here offers neither WebGL2 nor WebGPU, which the viewer needs: {page}")
    assert page["ready"], page
    assert [url for url in page["sent"] if urlparse(url).hostname != "127.0.0.1"] == [], page["sent"]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500  # text, frames, frustums: not a blank page
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)
    blue = (pixels[..., 2] > 180) & (pixels[..., 0] < 120)
    assert red.sum() > 50 and blue.sum() > 50  # hold-out (red) and train (blue) frustums in the 3D view


def test_spawn_without_a_display_says_it_needs_one(converted, tmp_path, monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "WAYLAND_SOCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    result = run_cli("view", converted, "-b", "nvs", "-p", "388", "-t", "0:1", "--spawn", exit_code=1)
    assert "Rerun's viewer exited at once" in result.output and "it needs a display" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_frame_midway_leaves_no_recording_behind(converted, tmp_path):
    store = tmp_path / "corrupt.zarr"
    shutil.copytree(converted, store)
    shard = store / "nvs/388/GLASSES/images/c/5/0/0/0/0"  # the sixth camera's frames: logged after five others
    data = bytearray(shard.read_bytes())
    data[100:-200] = bytes(len(data) - 300)  # the compressed chunks wrecked, the shard index kept
    shard.write_bytes(bytes(data))
    output = tmp_path / "out" / "view.rrd"
    output.parent.mkdir()  # a file output's folder must exist (outputs.claim_output_file)
    result = run_cli("view", store, "-b", "nvs", "-p", "388", "--save", output, exit_code=1)
    assert "Frame (5, 0)" in result.output and "could not be decompressed" in result.output
    assert list(output.parent.iterdir()) == []
