"""export-frames --format vhap-v2, read the way VHAP reads it.

VHAP does not install here, so this module re-implements, in its own words, what VHAP does with the export:
``NeRSembleV2Dataset`` (on ``NeRSembleDataset`` and ``VideoDataset``): the sequence folder matched by name under
``{subject}/sequences``, the cameras in the key order of ``camera_params.json`` with its one shared K and the
``opencv->opengl`` conversion (principal point y flipped at the calibration size), the cameras rotated onto the axes,
the timesteps listed from the ``images_{n}`` file names, each frame opened by PIL, K's first two rows scaled by
``1 / n_downsample_rgb``, ``color_calibration.json`` read per camera; and the ``ImageFolderDataset`` that its
BackgroundMattingV2 step reads (frames paired with ``../../BACKGROUND/image_{serial}.jpg``). The frame choice is
checked against ffmpeg's own ``fps`` filter and the pixel geometry against its ``scale`` filter (libavfilter through
PyAV), the two steps of VHAP's preprocessing that the export replaces.

Most tests read a small store written here as ``convert -b dataset`` writes dataset groups (12 frames, so that
resampling to 25 fps drops some; two levels; three cameras listed out of order); one reads the shared
``dataset_store`` that the real convert made from the synthetic dataset.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from helpers import ProgressRecorder, run_cli
from nersemble_zarr import catalogue, schema, storage
from nersemble_zarr.errors import ConfigError, StoreError
from nersemble_zarr.export_frames import export_vhap_v2
from nersemble_zarr.export_frames.vhap_v2 import source_frames
from nersemble_zarr.levels import scale_intrinsics

PARTICIPANT, SEQUENCE = 17, "EXP-2-eyes"
JSON_ORDER = ("222200049", "220700191", "221501007")  # camera_params.json's key order (not sorted)
FULL_HEIGHT, FULL_WIDTH = 120, 88   # the fixture's full-resolution frame size
N_SOURCE = 12                        # 73 fps frames in the fixture's sequence: 4 at 25 fps
FULL_K = np.array([[100.0, 0.0, 44.3], [0.0, 101.0, 59.6], [0.0, 0.0, 1.0]])


# ------------------------------------------------------------ VHAP's loading, re-implemented

def gram_schmidt(matrix: np.ndarray) -> np.ndarray:
    """VHAP's gram_schmidt_orthogonalization: orthonormal columns, left to right."""
    m = matrix.copy()
    for c in range(1, m.shape[1]):
        m[:, [c - 1, c]] /= np.linalg.norm(m[:, [c - 1, c]], axis=0)
        m[:, [c]] -= m[:, :c] @ (m[:, :c].T @ m[:, [c]])
    m[:, -1] /= np.linalg.norm(m[:, -1])
    return m


def vhap_camera_params(calibration: Path, image_size_during_calibration: tuple[int, int]) -> dict:
    """NeRSembleDataset.load_camera_params with VHAP's defaults (align_cameras_to_axes, 'opencv->opengl', w2c)."""
    param = json.loads(calibration.read_text())
    K = np.array(param["intrinsics"], dtype=np.float32)  # torch.Tensor: float32, one K shared by every camera
    height = param["height"] if "height" in param else image_size_during_calibration[0]
    camera_ids = list(param["world_2_cam"].keys())
    w2c = np.array([param["world_2_cam"][k] for k in camera_ids], dtype=np.float32)
    R, T = w2c[:, :3, :3], w2c[:, :3, 3]
    orientation = R.transpose(0, 2, 1)
    location = orientation @ -T[..., None]
    bases_c2w = gram_schmidt(orientation.mean(0))
    bases_c2w[:, [1, 2]] *= -1  # target convention opengl
    orientation, location = bases_c2w.T[None] @ orientation, bases_c2w.T[None] @ location
    orientation[:, :3, [1, 2]] *= -1  # opencv -> opengl
    K[1, 2] = height - K[1, 2]
    extrinsic = np.concatenate([orientation.transpose(0, 2, 1), orientation.transpose(0, 2, 1) @ -location], -1)
    return {camera_id: {"intrinsic": K, "extrinsic": extrinsic[i]} for i, camera_id in enumerate(camera_ids)}


VHAP_TRAIN_CAMERAS = [8, 7, 9, 4, 10, 5, 13, 2, 12, 1, 14, 0]  # NeRSembleDataset.filter_division's positions


def vhap_division(camera_ids: list[str], division: str | None) -> list[str]:
    """NeRSembleDataset.filter_division: cameras chosen by their position in camera_params.json."""
    if division is None:
        return camera_ids
    if division == "train":
        return [c for i, c in enumerate(camera_ids) if i in VHAP_TRAIN_CAMERAS]
    if division == "val":
        return [c for i, c in enumerate(camera_ids) if i not in VHAP_TRAIN_CAMERAS]
    if division == "front-view":
        return camera_ids[8:9]
    raise NotImplementedError(division)


def vhap_v2_dataset(root: Path, subject: str, sequence: str, n_downsample_rgb: int | None,
                    image_size_during_calibration: tuple[int, int], use_color_correction: bool = False,
                    division: str | None = None) -> dict:
    """NeRSembleV2Dataset(cfg) and every item it yields (no landmarks, alpha or background colour, scale 1)."""
    matches = [p for p in (root / subject / "sequences").glob(f"{sequence}*") if p.is_dir()]
    if len(matches) != 1:
        raise ValueError(f"Cannot find exactly one sequence {sequence!r}: {matches}")
    sequence_path = matches[0]
    folder = f"images_{n_downsample_rgb}" if n_downsample_rgb else "images"
    cameras = vhap_camera_params(root / subject / "calibration" / "camera_params.json", image_size_during_calibration)
    camera_ids = vhap_division(list(cameras), division)
    timestep_ids = sorted({f.split(".")[0].split("_")[-1] for f in os.listdir(sequence_path / folder)
                           if f.endswith("jpg")})
    colour = None
    if use_color_correction:
        text = (root / subject / "calibration" / "color_calibration.json").read_text()
        colour = {serial: np.array(ccm) for serial, ccm in json.loads(text).items()}
    scale = 1.0 / (n_downsample_rgb or 1)
    items = []
    for timestep_id in timestep_ids:
        for camera_id in camera_ids:
            path = sequence_path / folder / f"cam_{camera_id}_{timestep_id}.jpg"
            rgb = np.array(Image.open(path))
            if colour is not None:  # the v2 loader computes a corrected image and keeps the clipped input
                assert colour[camera_id].shape[0] == 3  # a camera without a matrix fails there (KeyError)
                rgb = (np.clip(rgb / 255, 0, 1) * 255).astype(np.uint8)
            intrinsic = cameras[camera_id]["intrinsic"].copy()
            if scale < 1.0:
                intrinsic[:2] *= scale
            items.append({"timestep_id": timestep_id, "camera_id": camera_id, "rgb": rgb, "intrinsic": intrinsic,
                          "extrinsic": cameras[camera_id]["extrinsic"]})
    return {"camera_ids": camera_ids, "timestep_ids": timestep_ids, "items": items}


def matting_items(images_dir: Path) -> list[dict]:
    """The ImageFolderDataset that VHAP's background_matting_v2 reads: each frame with its camera's background."""
    def cam_id(name: str) -> str:
        return name.split(".")[0].split("_")[1]

    backgrounds = {cam_id(p.name): np.array(Image.open(p))
                   for p in sorted((images_dir / "../../BACKGROUND").glob("*.jpg"))}
    return [{"rgb": np.array(Image.open(p)), "background": backgrounds[cam_id(p.name)], "path": p}
            for p in sorted(images_dir.glob("*.jpg"))]


# ------------------------------------------------------------ a store holding dataset groups

def frame(serial_index: int, timestep: int, height: int, width: int) -> np.ndarray:
    """A smooth frame whose brightness tells its timestep (15 levels apart) and camera."""
    y, x = np.mgrid[0:height, 0:width]
    base = 30 + 15 * timestep + serial_index
    picture = base + 10 * np.sin(x / width * 3 + serial_index)[..., None] + 8 * np.cos(y / height * 2)[..., None]
    picture = picture + np.array([0, 6, 12])
    return np.clip(np.round(picture), 0, 255).astype(np.uint8)


def world_2_cam(index: int) -> np.ndarray:
    angle = 0.4 * (index - 1)
    matrix = np.eye(4)
    matrix[:3, :3] = [[np.cos(angle), 0, -np.sin(angle)], [0, 1, 0], [np.sin(angle), 0, np.cos(angle)]]
    matrix[:3, 3] = [0.01 * index, -0.02, 1.0]
    return matrix


def calibration_text(order: tuple[str, ...] = JSON_ORDER) -> str:
    """camera_params.json listing the cameras in ``order``."""
    document = {"world_2_cam": {s: world_2_cam(i).tolist() for i, s in enumerate(order)}, "intrinsics": FULL_K.tolist()}
    return json.dumps(document, indent=4)


def colour_text(order: tuple[str, ...] = JSON_ORDER) -> str:
    return json.dumps({s: (np.eye(3) * (1 + 0.01 * i)).tolist() for i, s in enumerate(order)})


def write_dataset_group(store: Path, level: int, corrected: bool, *, order: tuple[str, ...] = JSON_ORDER,
                        serials: tuple[str, ...] | None = None, sequence: str = SEQUENCE, benchmark: str = "dataset",
                        n_source: int = N_SOURCE, background: bool = True) -> str:
    """A converted dataset group as `convert ROOT STORE -b dataset [--level N]` writes it: the cameras of the
    calibration listed in ``order``, the store holding ``serials`` (default: all of them) in sorted order."""
    storage.prepare_store(store)
    height, width = FULL_HEIGHT // level, FULL_WIDTH // level
    serials = tuple(sorted(order)) if serials is None else serials
    indices = [order.index(s) for s in serials]
    images = np.stack([np.stack([frame(i, t, height, width) for t in range(n_source)]) for i in indices])
    variables = {schema.IMAGES: ((schema.SERIAL, schema.TIMESTEP, schema.Y, schema.X, schema.CHANNEL), images)}
    if background:
        studio = np.stack([np.full((height, width, 3), 90 + 8 * i, np.uint8) for i in indices])
        variables[schema.BACKGROUND] = ((schema.SERIAL, schema.Y, schema.X, schema.CHANNEL), studio)
    coords = {
        schema.SERIAL: np.array(serials, dtype=object), schema.TIMESTEP: np.arange(n_source, dtype=np.int64),
        schema.WORLD_2_CAM: ((schema.SERIAL, schema.MAT4_ROW, schema.MAT4_COL), np.stack([world_2_cam(i)
                                                                                         for i in indices])),
        schema.INTRINSICS: ((schema.SERIAL, schema.MAT3_ROW, schema.MAT3_COL),
                            np.stack([scale_intrinsics(FULL_K, level)] * len(serials))),
        schema.COLOUR_CORRECTION: ((schema.SERIAL, schema.COLOUR_ROW, schema.COLOUR_TERM),
                                   np.stack([np.eye(3)] * len(serials))),
    }
    group = schema.level_group(level, benchmark, PARTICIPANT, sequence)
    xr.Dataset(variables, coords=coords).to_zarr(
        storage.store_path(store), group=group, mode="w-", zarr_format=3, consolidated=False,
        encoding={schema.IMAGES: {"chunks": (1, 1, height, width, 3)}}, write_empty_chunks=True)
    attrs = {schema.BENCHMARK_ATTR: benchmark, schema.PARTICIPANT_ATTR: PARTICIPANT, schema.SEQUENCE_ATTR: sequence,
             schema.HEIGHT_ATTR: height, schema.WIDTH_ATTR: width, schema.COLOUR_CORRECTED_ATTR: corrected,
             schema.CALIBRATION_JSON_ATTR: calibration_text(order),
             schema.COLOUR_CALIBRATION_JSON_ATTR: colour_text(order), schema.CONVERTED_ATTR: True}
    if level > 1:
        attrs[schema.LEVEL_ATTR] = level
    storage.open_group(store, group, mode="r+").attrs.update(attrs)
    return group


@pytest.fixture(scope="module")
def v2_store(tmp_path_factory) -> Path:
    """A store with the sequence uncorrected at levels 1 and 2."""
    store = tmp_path_factory.mktemp("v2") / "dataset.zarr"
    write_dataset_group(store, 1, False)
    write_dataset_group(store, 2, False)
    return store


@pytest.fixture(scope="module")
def corrected_store(tmp_path_factory) -> Path:
    """A store with the sequence colour-corrected at level 4 only (22x30: not divisible by 4)."""
    store = tmp_path_factory.mktemp("v2c") / "dataset.zarr"
    write_dataset_group(store, 4, True)
    return store


def store_frames(store: Path, level: int) -> xr.Dataset:
    return storage.open_dataset(store, schema.level_group(level, "dataset", PARTICIPANT, SEQUENCE)).load()


# ------------------------------------------------------------ the frame rate: ffmpeg's own fps filter

def ffmpeg_fps_picks(n_source: int, fps: int) -> list[int]:
    """Which of ``n_source`` 73 fps frames (each 1/73 s long, as in the mp4) libavfilter's fps filter outputs."""
    import av
    from av.filter import Graph

    graph = Graph()
    source = graph.add_buffer(width=16, height=16, format="gray", time_base=Fraction(1, 73))
    resample, sink = graph.add("fps", f"fps={fps}"), graph.add("buffersink")
    source.link_to(resample)
    resample.link_to(sink)
    graph.configure()
    picks: list[int] = []

    def drain() -> None:
        while True:
            try:
                picked = graph.pull().to_ndarray()
            except (av.BlockingIOError, av.EOFError):
                return
            picks.append(int(picked[0, 0]) + 256 * int(picked[0, 1]))

    for index in range(n_source):
        pixels = np.zeros((16, 16), np.uint8)
        pixels[0, 0], pixels[0, 1] = index % 256, index // 256
        video_frame = av.VideoFrame.from_ndarray(pixels, format="gray")
        video_frame.pts, video_frame.time_base, video_frame.duration = index, Fraction(1, 73), 1
        graph.push(video_frame)
        drain()
    graph.push(None)
    drain()
    return picks


@pytest.mark.parametrize("fps", [25, 30, 24, 10])
def test_frames_are_those_ffmpegs_fps_filter_picks(fps):
    for n_source in [1, 2, 3, 4, 8, 12, 13, 29, 30, 73, 146, 301]:
        assert source_frames(n_source, fps) == ffmpeg_fps_picks(n_source, fps), (n_source, fps)
    assert len(source_frames(N_SOURCE, 25)) == round(N_SOURCE * 25 / 73) == 4


def test_ffmpegs_scaling_keeps_pixel_centres_like_the_stores_levels():
    """VHAP's preprocessing scales with ffmpeg (``scale=W/n:H/n``, bicubic): on a linear ramp its output pixel j
    holds the ramp at source position (j + 0.5) * n - 0.5, the pixel-centre rule of the store's levels, so the
    exported frames sit where VHAP's own would and the principal point offset below is VHAP's, not the export's."""
    import av
    from av.filter import Graph

    width, height, factor = 64, 16, 4
    ramp = np.tile((np.arange(width) * 3 + 20).astype(np.uint8), (height, 1))
    graph = Graph()
    source = graph.add_buffer(width=width, height=height, format="gray", time_base=Fraction(1, 73))
    scale = graph.add("scale", f"width={width // factor}:height={height // factor}:flags=bicubic")
    sink = graph.add("buffersink")
    source.link_to(scale)
    scale.link_to(sink)
    graph.configure()
    picture = av.VideoFrame.from_ndarray(ramp, format="gray")
    picture.pts = 0
    graph.push(picture)
    row = graph.pull().to_ndarray()[height // factor // 2, 1:-1].astype(np.float64)  # away from the borders
    centres = (np.arange(1, width // factor - 1) + 0.5) * factor - 0.5
    np.testing.assert_allclose(row, centres * 3 + 20, atol=1.0)


# ------------------------------------------------------------ VHAP reads the export

@pytest.mark.parametrize("level", [1, 2])
def test_vhap_finds_every_camera_and_timestep_with_exact_sizes_and_pixels(v2_store, tmp_path, level):
    out = tmp_path / "nersemble_v2"
    summary = export_vhap_v2(v2_store, out, participant=PARTICIPANT, sequence=SEQUENCE, level=level, workers=2)
    picked = source_frames(N_SOURCE, 25)
    assert summary.frames_written == len(picked) * 3 and summary.backgrounds_written == 3
    vhap = vhap_v2_dataset(out, f"{PARTICIPANT:03d}", SEQUENCE, None if level == 1 else level,
                           (FULL_HEIGHT, FULL_WIDTH), use_color_correction=True)
    assert vhap["camera_ids"] == list(JSON_ORDER)  # the key order: VHAP's position 8 is its validation camera
    assert vhap["timestep_ids"] == [f"{n:06d}" for n in range(len(picked))]
    assert len(vhap["items"]) == len(picked) * 3
    stored = store_frames(v2_store, level)
    serials = [str(s) for s in stored[schema.SERIAL].values]
    height, width = FULL_HEIGHT // level, FULL_WIDTH // level
    for item in vhap["items"]:
        assert item["rgb"].shape == (height, width, 3) and item["rgb"].dtype == np.uint8
        pictures = stored[schema.IMAGES].values[serials.index(item["camera_id"])].astype(np.float64)
        errors = np.abs(pictures - item["rgb"]).mean(axis=(1, 2, 3))
        source = picked[int(item["timestep_id"])]
        assert errors.argmin() == source and errors[source] < 1.5, (item["camera_id"], item["timestep_id"], errors)
    assert (out / f"{PARTICIPANT:03d}/calibration/camera_params.json").read_text() == calibration_text()
    assert (out / f"{PARTICIPANT:03d}/calibration/color_calibration.json").read_text() == colour_text()


def test_vhaps_validation_camera_is_the_ninth_of_the_calibration_file(tmp_path):
    """With NeRSemble's 16 cameras listed in the calibration's order (the store's serial axis is sorted), VHAP's
    position 8 (its front view and validation camera) is the ninth key of camera_params.json, with its frames."""
    order = tuple(catalogue.SERIALS)
    store = tmp_path / "sixteen.zarr"
    write_dataset_group(store, 4, False, order=order)
    out = tmp_path / "nersemble_v2"
    export_vhap_v2(store, out, participant=PARTICIPANT, sequence=SEQUENCE, level=4, workers=2)
    everything = vhap_v2_dataset(out, "017", SEQUENCE, 4, (FULL_HEIGHT, FULL_WIDTH))
    assert everything["camera_ids"] == list(order) and len(everything["items"]) == 16 * 4
    front = vhap_v2_dataset(out, "017", SEQUENCE, 4, (FULL_HEIGHT, FULL_WIDTH), division="front-view")
    assert front["camera_ids"] == [order[8]] == ["222200037"]
    train = vhap_v2_dataset(out, "017", SEQUENCE, 4, (FULL_HEIGHT, FULL_WIDTH), division="train")["camera_ids"]
    assert len(train) == 12 and set(train) | {order[i] for i in (3, 6, 11, 15)} == set(order)
    stored = store_frames(store, 4)
    position = [str(s) for s in stored[schema.SERIAL].values].index("222200037")
    picked = source_frames(N_SOURCE, 25)
    for item in front["items"]:
        expected = stored[schema.IMAGES].values[position, picked[int(item["timestep_id"])]]
        assert np.abs(item["rgb"].astype(np.float64) - expected).mean() < 2.0


@pytest.mark.parametrize("level", [1, 2])
def test_intrinsics_vhap_derives_are_the_stores_at_that_level(v2_store, tmp_path, level):
    """VHAP's K / n is the store's level rule (``scale_intrinsics``), read in VHAP's pixel convention."""
    out = tmp_path / "nersemble_v2"
    export_vhap_v2(v2_store, out, participant=PARTICIPANT, sequence=SEQUENCE, level=level, workers=1)
    vhap = vhap_v2_dataset(out, f"{PARTICIPANT:03d}", SEQUENCE, None if level == 1 else level,
                           (FULL_HEIGHT, FULL_WIDTH))
    stored = store_frames(v2_store, level)
    serials = [str(s) for s in stored[schema.SERIAL].values]
    for item in vhap["items"]:
        ours = stored[schema.INTRINSICS].values[serials.index(item["camera_id"])]
        assert_vhap_intrinsics_are_the_stores(item["intrinsic"], ours, FULL_K, level, FULL_HEIGHT // level)


def vhap_pixel_centre_intrinsics(vhap_intrinsic: np.ndarray, height: int) -> np.ndarray:
    """VHAP's K as OpenCV pixel-centre intrinsics: back from its OpenGL principal point (cy' = H - cy), then
    half a pixel up and left, because its renderer (``projection_from_intrinsics``: the principal ray at NDC
    ``2 cx / w - 1``, nvdiffrast's pixel i centred at NDC ``(2 i + 1) / w - 1``) puts pixel edges at integers."""
    K = vhap_intrinsic.astype(np.float64).copy()
    K[1, 2] = height - K[1, 2]
    K[:2, 2] -= 0.5
    return K


def assert_vhap_intrinsics_are_the_stores(vhap_intrinsic: np.ndarray, stored: np.ndarray, full_k: np.ndarray,
                                          level: int, height: int) -> None:
    """The store's level intrinsics are the level rule applied to the downloaded K read with pixel centres at
    integers; VHAP's are the same rule applied to the same K read as its renderer reads it (pixel edges at
    integers, so the principal point half a full-resolution pixel up and left)."""
    as_vhap_reads_it = full_k.copy()
    as_vhap_reads_it[:2, 2] -= 0.5
    np.testing.assert_allclose(stored, scale_intrinsics(full_k, level), atol=1e-9)
    np.testing.assert_allclose(vhap_pixel_centre_intrinsics(vhap_intrinsic, height),
                               scale_intrinsics(as_vhap_reads_it, level), rtol=1e-6, atol=1e-4)


def test_vhaps_cameras_are_the_stores_rigidly_rotated(v2_store, tmp_path):
    out = tmp_path / "nersemble_v2"
    export_vhap_v2(v2_store, out, participant=PARTICIPANT, sequence=SEQUENCE, level=2, workers=1)
    cameras = vhap_camera_params(out / f"{PARTICIPANT:03d}/calibration/camera_params.json",
                                 (FULL_HEIGHT, FULL_WIDTH))
    stored = store_frames(v2_store, 2)
    serials = [str(s) for s in stored[schema.SERIAL].values]

    def centre(w2c: np.ndarray) -> np.ndarray:
        return -w2c[:3, :3].T @ w2c[:3, 3]

    ours = {s: centre(stored[schema.WORLD_2_CAM].values[serials.index(s)]) for s in JSON_ORDER}
    theirs = {s: centre(cameras[s]["extrinsic"].astype(np.float64)) for s in JSON_ORDER}
    for a in JSON_ORDER:
        for b in JSON_ORDER:
            assert np.linalg.norm(theirs[a] - theirs[b]) == pytest.approx(np.linalg.norm(ours[a] - ours[b]), abs=1e-5)


def test_background_matting_pairs_each_frame_with_its_cameras_studio(v2_store, tmp_path):
    out = tmp_path / "nersemble_v2"
    export_vhap_v2(v2_store, out, participant=PARTICIPANT, sequence=SEQUENCE, level=2, workers=1)
    items = matting_items(out / f"{PARTICIPANT:03d}/sequences/{SEQUENCE}/images_2")
    assert len(items) == 4 * 3
    stored = store_frames(v2_store, 2)
    serials = [str(s) for s in stored[schema.SERIAL].values]
    for item in items:
        assert item["background"].shape == item["rgb"].shape == (FULL_HEIGHT // 2, FULL_WIDTH // 2, 3)
        assert all(n % 4 == 0 for n in item["rgb"].shape[:2])  # BackgroundMattingV2's requirement
        serial = item["path"].name.split("_")[1]
        expected = stored[schema.BACKGROUND].values[serials.index(serial)].astype(np.float64)
        assert np.abs(item["background"] - expected).max() <= 2


# ------------------------------------------------------------ the command, resuming and bad input

def test_command_says_what_vhap_still_has_to_do(v2_store, corrected_store, tmp_path):
    out = tmp_path / "nersemble_v2"
    result = run_cli("export-frames", v2_store, out, "--format", "vhap-v2", "-p", PARTICIPANT, "-s", SEQUENCE,
                     "--level", 2, "--workers", 1, exit_code=0)
    assert "12 frame(s) and 3 background(s) written" in result.output
    assert "GPU" in result.output and "landmarks" in result.output
    assert "divisible by 4" not in result.output and "no_use_color_correction" not in result.output
    assert f"--data.root_folder {out} --data.subject 017 --data.sequence {SEQUENCE} --data.n_downsample_rgb 2" \
        in result.output
    corrected = run_cli("export-frames", corrected_store, tmp_path / "c", "--format", "vhap-v2", "-p", PARTICIPANT,
                        "-s", SEQUENCE, "--level", 4, exit_code=0)
    assert "BackgroundMattingV2 needs frame sizes divisible by 4; images_4 is 22x30" in corrected.output
    assert "--data.no_use_color_correction" in corrected.output
    vhap = vhap_v2_dataset(tmp_path / "c", "017", SEQUENCE, 4, (FULL_HEIGHT, FULL_WIDTH))
    assert len(vhap["items"]) == 12 and vhap["items"][0]["rgb"].shape == (30, 22, 3)
    full = run_cli("export-frames", v2_store, tmp_path / "f", "--format", "vhap-v2", "-p", PARTICIPANT,
                   "-s", SEQUENCE, "--fps", 10, exit_code=0)
    assert "n_downsample_rgb" not in full.output  # level 1 is VHAP's images/, read without the option
    assert sorted(os.listdir(tmp_path / "f/017/sequences" / SEQUENCE / "images"))[0] == "cam_220700191_000000.jpg"
    assert len(list((tmp_path / "f/017/sequences" / SEQUENCE / "images").glob("*.jpg"))) == 2 * 3  # round(12 * 10 / 73)


def test_rerun_resumes_and_refuses_files_it_would_replace(v2_store, tmp_path):
    out = tmp_path / "nersemble_v2"
    export_vhap_v2(v2_store, out, participant=PARTICIPANT, sequence=SEQUENCE, level=2, workers=1)
    images = out / f"{PARTICIPANT:03d}/sequences/{SEQUENCE}/images_2"
    kept = images / "cam_221501007_000003.jpg"
    before = kept.read_bytes()
    (images / "cam_222200049_000001.jpg").unlink()
    (images / ".cam_222200049_000001.jpg.0123.part.jpg").write_bytes(b"half")  # a killed run's leftover
    progress = ProgressRecorder()
    again = export_vhap_v2(v2_store, out, participant=PARTICIPANT, sequence=SEQUENCE, level=2, workers=1,
                           progress=progress)
    assert (again.frames_written, again.frames_skipped, again.backgrounds_written) == (1, 11, 0)
    assert progress.totals == [1] and progress.done == 1  # one camera had work left
    assert kept.read_bytes() == before and not list(images.glob(".*part*"))
    with pytest.raises(ConfigError, match="already holds an export with"):
        export_vhap_v2(v2_store, out, participant=PARTICIPANT, sequence=SEQUENCE, level=2, fps=30, workers=1)
    with pytest.raises(ConfigError, match="VHAP keeps one background per camera"):
        export_vhap_v2(v2_store, out, participant=PARTICIPANT, sequence=SEQUENCE, level=1, workers=1)
    assert not (out / f"{PARTICIPANT:03d}/sequences/{SEQUENCE}/images").exists()
    other = tmp_path / "other"
    calibration = other / f"{PARTICIPANT:03d}/calibration/camera_params.json"
    calibration.parent.mkdir(parents=True)
    calibration.write_text("{}")
    with pytest.raises(ConfigError, match="differs from the calibration"):
        export_vhap_v2(v2_store, other, participant=PARTICIPANT, sequence=SEQUENCE, level=2, workers=1)
    assert calibration.read_text() == "{}" and not (other / f"{PARTICIPANT:03d}/sequences").exists()


def test_a_store_with_some_cameras_lists_only_those_in_json_order(tmp_path):
    store = tmp_path / "some.zarr"
    write_dataset_group(store, 2, False, serials=("221501007", "222200049"))
    out = tmp_path / "out"
    export_vhap_v2(store, out, participant=PARTICIPANT, sequence=SEQUENCE, level=2, workers=1)
    written = json.loads((out / "017/calibration/camera_params.json").read_text())
    assert list(written["world_2_cam"]) == ["222200049", "221501007"]
    assert written["intrinsics"] == FULL_K.tolist()
    vhap = vhap_v2_dataset(out, "017", SEQUENCE, 2, (FULL_HEIGHT, FULL_WIDTH))
    assert len(vhap["items"]) == 4 * 2


@pytest.mark.parametrize("args, sentence", [
    (["-p", 18, "-s", SEQUENCE, "--level", 2], "holds no participant 18"),
    (["-p", PARTICIPANT, "-s", "EMO-1", "--level", 2], "holds no sequence 'EMO-1' of participant 17"),
    (["-p", PARTICIPANT, "-s", SEQUENCE, "--level", 4], "at level(s) 1, 2, not at level 4"),
    (["-p", PARTICIPANT, "-s", SEQUENCE, "--level", 2, "--stride", 2], "--stride does not apply"),
    (["-s", SEQUENCE], "give --participant and --sequence"),
])
def test_bad_input_is_one_sentence(v2_store, tmp_path, args, sentence):
    result = run_cli("export-frames", v2_store, tmp_path / "out", "--format", "vhap-v2", *args)
    assert result.exit_code != 0 and sentence in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_too_few_or_missing_frames_are_one_sentence(tmp_path):
    short = tmp_path / "short.zarr"
    write_dataset_group(short, 1, False, n_source=1)
    with pytest.raises(ConfigError, match="1 frame\\(s\\) of dataset/17/EXP-2-eyes .* make no frame at 25 fps"):
        export_vhap_v2(short, tmp_path / "out", participant=PARTICIPANT, sequence=SEQUENCE)
    gaps = tmp_path / "gaps.zarr"
    group = write_dataset_group(gaps, 1, False, n_source=2)
    storage.open_array(gaps, f"{group}/{schema.TIMESTEP}", mode="r+")[1] = 5  # frames 0 and 5 of a 6-frame video
    with pytest.raises(StoreError, match="lacks frame 1 of the 73 fps video"):
        export_vhap_v2(gaps, tmp_path / "out", participant=PARTICIPANT, sequence=SEQUENCE)
    assert not (tmp_path / "out").exists()


def test_a_file_in_the_way_is_one_sentence(v2_store, tmp_path):
    out = tmp_path / "out"
    (out / f"{PARTICIPANT:03d}").parent.mkdir()
    (out / f"{PARTICIPANT:03d}").write_text("mine")
    result = run_cli("export-frames", v2_store, out, "--format", "vhap-v2", "-p", PARTICIPANT, "-s", SEQUENCE,
                     "--level", 2, exit_code=1)
    assert "Writing the vhap-v2 export into" in result.output and "Not a directory" in result.output
    assert (out / f"{PARTICIPANT:03d}").read_text() == "mine"


def test_a_serial_that_is_not_a_plain_name_never_names_a_file(tmp_path):
    store = tmp_path / "hostile.zarr"
    group = write_dataset_group(store, 1, False)
    serials = storage.open_array(store, f"{group}/{schema.SERIAL}", mode="r+")
    serials[0] = "../../x"
    with pytest.raises(StoreError, match="not a plain name"):
        export_vhap_v2(store, tmp_path / "out", participant=PARTICIPANT, sequence=SEQUENCE, level=1)
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()


def test_fps_with_another_format_is_one_sentence(v2_store, tmp_path):
    result = run_cli("export-frames", v2_store, tmp_path / "out", "--format", "nerfstudio", "--fps", 25, exit_code=2)
    assert "--fps applies to --format vhap-v2 only." in result.output and not (tmp_path / "out").exists()


def test_a_group_that_is_not_a_dataset_group_is_refused(tmp_path):
    store = tmp_path / "bench.zarr"
    storage.prepare_store(store)
    with pytest.raises(StoreError, match="holds no NeRSemble v2 dataset group"):
        export_vhap_v2(store, tmp_path / "out", participant=PARTICIPANT, sequence=SEQUENCE, level=1)
    other = tmp_path / "other.zarr"
    group = write_dataset_group(other, 1, False)
    storage.open_group(other, group, mode="r+").attrs[schema.BENCHMARK_ATTR] = "nvs"
    with pytest.raises(StoreError, match="is not a NeRSemble v2 dataset group"):
        export_vhap_v2(other, tmp_path / "out", participant=PARTICIPANT, sequence=SEQUENCE, level=1)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------ from a real convert of the synthetic dataset

@pytest.mark.parametrize("participant, level, corrected", [(17, 4, True), (18, 4, True), (18, 1, False)])
def test_vhap_reads_the_export_of_a_converted_dataset(dataset_store, synthetic_dataset, tmp_path, participant,
                                                      level, corrected):
    """The shared converted store (convert -b dataset, level 1 uncorrected and level 4 colour-corrected), exported
    at 73 fps (every stored frame) and read by VHAP's loader."""
    sequence = "EXP-1-head"
    out = tmp_path / "nersemble_v2"
    result = run_cli("export-frames", dataset_store, out, "--format", "vhap-v2", "-p", participant, "-s", sequence,
                     "--level", level, "--fps", 73, "--workers", 1, exit_code=0)
    assert ("--data.no_use_color_correction" in result.output) == corrected
    for name in ("camera_params.json", "color_calibration.json"):  # byte for byte the downloaded files
        downloaded = synthetic_dataset / f"{participant:03d}/calibration/{name}"
        assert (out / f"{participant:03d}/calibration/{name}").read_bytes() == downloaded.read_bytes()
    calibration = json.loads((synthetic_dataset / f"{participant:03d}/calibration/camera_params.json").read_text())
    stored = storage.open_dataset(dataset_store, schema.level_group(level, "dataset", participant, sequence)).load()
    height, width = stored.attrs["full_height"], stored.attrs["full_width"]  # the calibration's image size
    h, w = height // level, width // level
    assert (f"images_4 is {w}x{h}" in result.output) == (level == 4 and (w % 4 or h % 4) != 0)
    vhap = vhap_v2_dataset(out, f"{participant:03d}", sequence, None if level == 1 else level, (height, width),
                           use_color_correction=not corrected)
    assert vhap["camera_ids"] == list(calibration["world_2_cam"])
    assert vhap["timestep_ids"] == [f"{n:06d}" for n in range(stored.sizes[schema.TIMESTEP])]  # 73 fps: all
    serials = [str(s) for s in stored[schema.SERIAL].values]
    assert len(vhap["items"]) == len(serials) * stored.sizes[schema.TIMESTEP]
    for item in vhap["items"]:
        camera = serials.index(item["camera_id"])
        expected = stored[schema.IMAGES].values[camera, int(item["timestep_id"])]
        assert item["rgb"].shape == expected.shape == (h, w, 3)
        assert np.abs(item["rgb"].astype(np.float64) - expected).mean() < 2.0
        full_k = np.array(calibration["intrinsics"], dtype=np.float64)
        assert_vhap_intrinsics_are_the_stores(item["intrinsic"], stored[schema.INTRINSICS].values[camera], full_k,
                                              level, h)
    background = out / f"{participant:03d}/sequences/BACKGROUND"
    assert sorted(p.name for p in background.iterdir()) == [f"image_{s}.jpg" for s in sorted(serials)]


def test_a_dask_cluster_writes_the_same_export(v2_store, tmp_path):
    from dask.distributed import Client, LocalCluster

    threads = tmp_path / "threads"
    export_vhap_v2(v2_store, threads, participant=PARTICIPANT, sequence=SEQUENCE, level=2, workers=2)
    cluster_out = tmp_path / "cluster"
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        summary = export_vhap_v2(v2_store, cluster_out, participant=PARTICIPANT, sequence=SEQUENCE, level=2,
                                 client=client)
    assert (summary.frames_written, summary.backgrounds_written) == (12, 3)
    files = sorted(p.relative_to(threads) for p in threads.rglob("*.jpg"))
    assert files == sorted(p.relative_to(cluster_out) for p in cluster_out.rglob("*.jpg")) and len(files) == 15
    assert all((threads / f).read_bytes() == (cluster_out / f).read_bytes() for f in files)
