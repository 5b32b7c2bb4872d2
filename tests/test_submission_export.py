"""export_submission: round trips against synthetic ground truth, every input kind, streaming, safe failure."""

from __future__ import annotations

import os
import tempfile
import time
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from helpers import predictions_dataset, ProgressRecorder, write_predictions
from nersemble_zarr import catalogue, schema
from nersemble_zarr.errors import ConfigError, StoreError, SubmissionError
from nersemble_zarr.submission import expected_submission, export_submission, sources, validate_submission
from nersemble_zarr.submission.frames import to_uint8
from nersemble_zarr.submission.sources import ArrayVideo, plan_blocks
from nersemble_zarr.synthetic import SyntheticConfig, render_views
from nersemble_zarr.video import iter_frames, probe

# Every participant, sequence and camera, 4 frames each, at 1/10 of the real size (nvs 110x160, mono 52x52).
CONFIG = SyntheticConfig(scale=0.1, n_frames=4)
NVS_388 = [(388, "GLASSES", serial) for serial in catalogue.NVS_HOLD_OUT_SERIALS]


def render(config: SyntheticConfig, benchmark: str, key: tuple[int, str, str]) -> np.ndarray:
    """Ground-truth frames (T, H, W, 3) uint8 of one camera, hold-out cameras included."""
    return np.stack([rgb for rgb, _ in render_views(config, benchmark, *key)])


def all_keys(benchmark: str) -> list[tuple[int, str, str]]:
    return [
        (p, s, serial)
        for p, s in catalogue.submission_sequences(benchmark)
        for serial in catalogue.submission_serials(benchmark)
    ]


def counts(benchmark: str) -> dict[tuple[int, str], int]:
    return {(p, s): CONFIG.n_frames_of(benchmark, p, s) for p, s in catalogue.submission_sequences(benchmark)}


def options(benchmark: str) -> dict:
    return {"frame_counts": counts(benchmark), "resolution": CONFIG.frame_size(benchmark)}


@pytest.fixture(scope="module")
def nvs_truth() -> dict[tuple[int, str, str], np.ndarray]:
    return {key: render(CONFIG, "nvs", key) for key in all_keys("nvs")}


def decoded(zip_path: Path, entry: str) -> np.ndarray:
    """All frames of one video inside the zip, decoded with PyAV."""
    with tempfile.TemporaryDirectory() as scratch, zipfile.ZipFile(zip_path) as archive:
        target = Path(scratch) / "decoded.mp4"
        target.write_bytes(archive.read(entry))
        return np.stack(list(iter_frames(target)))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def write_store(path: Path, truth: dict, *, extra_serial: bool = False) -> Path:
    """A predictions store laid out like a converted one, chunked 2 frames along time."""
    groups = {}
    sequences = sorted({(p, s) for p, s, _ in truth})
    for p, s in sequences:
        serials = [serial for q, t, serial in truth if (q, t) == (p, s)]
        frames = [truth[p, s, serial] for serial in serials]
        if extra_serial:  # a train camera the submission must ignore
            serials.append(catalogue.NVS_TRAIN_SERIALS[0])
            frames.append(np.zeros_like(frames[0]))
        images = np.stack(frames)
        groups[schema.sequence_group("nvs", p, s)] = predictions_dataset(
            serials, images, timesteps=np.arange(images.shape[1]) * 3 + 2)
    encoding = {f"/{g}": {schema.IMAGES: {"chunks": (1, 2) + ds[schema.IMAGES].shape[2:]}} for g, ds in groups.items()}
    return write_predictions(path, groups, encoding)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- round trips
def test_store_round_trip_is_faithful_complete_and_valid(tmp_path, nvs_truth):
    store = write_store(tmp_path / "pred.zarr", nvs_truth, extra_serial=True)
    output = tmp_path / "submission.zip"
    progress = ProgressRecorder()
    report = export_submission(store, output, "nvs", progress=progress, **options("nvs"))

    assert report.ok and report.path == output
    assert progress.totals == [60] and progress.done == 60 and min(progress.counts) > 0
    expected_entries = [catalogue.submission_entry(*key) for key in all_keys("nvs")]
    with zipfile.ZipFile(output) as archive:
        assert archive.namelist() == expected_entries
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    for key, frames in nvs_truth.items():
        video = decoded(output, catalogue.submission_entry(*key))
        assert video.shape == frames.shape == (4, 160, 110, 3)
        assert psnr(video, frames) >= 40
    assert listing(tmp_path) == ["pred.zarr", "submission.zip"]


@pytest.mark.parametrize(
    "kind", ["uint8", "float32", "dask", "zarr-array", "dataarray-with-serial", "dataset", "datatree"]
)
def test_every_input_kind_gives_each_camera_its_own_frames(tmp_path, nvs_truth, kind):
    truth = {key: nvs_truth[key] for key in NVS_388}
    dims = (schema.TIMESTEP, schema.Y, schema.X, schema.CHANNEL)
    stacked = xr.DataArray(
        np.stack([truth[key] for key in NVS_388]), dims=(schema.SERIAL,) + dims,
        coords={schema.SERIAL: [serial for _, _, serial in NVS_388]},
    )
    if kind == "uint8":
        predictions = truth
    elif kind == "float32":
        predictions = {key: frames.astype(np.float32) / 255 for key, frames in truth.items()}
    elif kind == "dask":
        predictions = {key: da.from_array(frames, chunks=(3, -1, -1, -1)) for key, frames in truth.items()}
    elif kind == "zarr-array":
        predictions = {}
        for key, frames in truth.items():
            path = tmp_path / f"{key[2]}.zarr"
            array = zarr.create_array(path, shape=frames.shape, chunks=(3, 160, 110, 3), dtype="u1")
            array[...] = frames
            predictions[key] = array
    elif kind == "dataarray-with-serial":  # any dim order; the camera is picked by its serial
        shuffled = stacked.transpose(schema.SERIAL, schema.X, schema.Y, schema.TIMESTEP, schema.CHANNEL)
        predictions = {key: shuffled for key in truth}
    elif kind == "dataset":
        predictions = {key: xr.Dataset({schema.IMAGES: stacked.sel(serial=key[2])}) for key in truth}
    else:
        chunked = xr.Dataset({schema.IMAGES: stacked.chunk({schema.TIMESTEP: 1})})
        predictions = xr.DataTree.from_dict({"nvs/388/GLASSES": chunked})
    output = tmp_path / "submission.zip"
    export_submission(predictions, output, "nvs", partial=True, workers=2, **options("nvs"))

    for key in NVS_388:
        video = decoded(output, catalogue.submission_entry(*key))
        assert video.shape == truth[key].shape
        # The cameras' renders differ (PSNR between them < 30 dB), so 40 dB pins each video to its camera.
        assert psnr(video, truth[key]) >= 40


def test_float_frames_convert_exactly_to_uint8():
    frames = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)
    for dtype in (np.float16, np.float32, np.float64):
        np.testing.assert_array_equal(to_uint8(frames.astype(dtype) / 255, "v", 0), frames)
    assert to_uint8(frames, "v", 0) is frames


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Encode one RGB image as PNG or JPEG with PyAV (no imaging library needed)."""
    jpeg = path.suffix == ".jpg"
    codec = av.CodecContext.create("mjpeg" if jpeg else "png", "w")
    codec.width, codec.height = rgb.shape[1], rgb.shape[0]
    codec.pix_fmt = "yuvj444p" if jpeg else "rgb24"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format=codec.pix_fmt)
    path.write_bytes(b"".join(bytes(packet) for packet in codec.encode(frame) + codec.encode(None)))


def test_image_folder_round_trip(tmp_path, nvs_truth):
    folder = tmp_path / "pred"
    for index, key in enumerate(NVS_388):
        camera = folder / f"{key[0]:03d}" / key[1] / f"cam_{key[2]}"
        camera.mkdir(parents=True)
        for t, frame in enumerate(nvs_truth[key]):
            # One camera's names unpadded (numbers, not text, order them), one camera stored as JPEG; numbers
            # with a gap are refused (tests/test_reliability_predictions.py).
            name = f"{t}" if index == 1 else f"{t:05d}"
            write_image(camera / f"{name}.{'jpg' if index == 2 else 'png'}", frame)
    (folder / ".DS_Store").write_bytes(b"ignored")
    output = tmp_path / "submission.zip"
    export_submission(folder, output, "nvs", partial=True, **options("nvs"))

    for index, key in enumerate(NVS_388):
        video = decoded(output, catalogue.submission_entry(*key))
        assert psnr(video, nvs_truth[key]) >= (30 if index == 2 else 40)


def test_metadata_from_fetched_root_sets_counts_rate_and_camera_set(tmp_path, synthetic_root, synthetic_config):
    keys = [(393, "FREE", serial) for serial in catalogue.submission_serials("mono_flame_avatar")]
    truth = {key: render(synthetic_config, "mono_flame_avatar", key) for key in keys}
    output = tmp_path / "mono.zip"
    size = synthetic_config.frame_size("mono_flame_avatar")
    report = export_submission(truth, output, "mono_flame_avatar", root=synthetic_root, partial=True, resolution=size)

    assert report.valid_videos == tuple(catalogue.submission_entry(*key) for key in keys)
    with zipfile.ZipFile(output) as archive:
        (tmp_path / "one.mp4").write_bytes(archive.read(catalogue.submission_entry(*keys[0])))
    info = probe(tmp_path / "one.mp4")
    assert (info.n_frames, info.width, info.height) == (6, 52, 52)
    assert (info.codec, info.pix_fmt, info.fps) == ("h264", "yuv420p", pytest.approx(24.3))
    # Without --partial the other 19 sequences have no frame count in this metadata.
    with pytest.raises(SubmissionError, match=r"No frame count is known for 19 mono_flame_avatar sequence"):
        export_submission(truth, tmp_path / "other.zip", "mono_flame_avatar", root=synthetic_root, resolution=size)


def test_frame_counts_from_a_converted(tmp_path, synthetic_root):
    from nersemble_zarr.convert import convert

    store = tmp_path / "bench.zarr"
    convert(synthetic_root, store, benchmarks=("mono_flame_avatar",), sequences=("FREE",), workers=1)
    spec = expected_submission("mono_flame_avatar", store=store, partial=True)
    known = {(v.participant, v.sequence): v.n_frames for v in spec.videos if v.n_frames is not None}
    assert known == {(393, "FREE"): 6}
    tree = xr.open_datatree(store, engine="zarr")  # the same store, opened as a DataTree
    spec = expected_submission("mono_flame_avatar", store=tree, partial=True)
    assert {(v.participant, v.sequence): v.n_frames for v in spec.videos if v.n_frames is not None} == known
    with pytest.raises(StoreError, match="not a zarr store"):
        expected_submission("nvs", store=tmp_path)


def test_nvs_counts_default_to_the_catalogue_and_mono_needs_metadata():
    spec = expected_submission("nvs")
    assert len(spec.videos) == 15 and (spec.width, spec.height, spec.fps) == (1100, 1604, 73.0)
    assert {v.n_frames for v in spec.videos if v.participant == 475} == {259}
    with pytest.raises(SubmissionError, match="metadata.json; pass the fetched folder"):
        expected_submission("mono_flame_avatar")
    assert len(expected_submission("mono_flame_avatar", frame_counts=counts("mono_flame_avatar")).videos) == 80


# ---------------------------------------------------------------- bad predictions
def _bad(nvs_truth, change: str):
    truth = {key: nvs_truth[key] for key in NVS_388}
    first = NVS_388[0]
    if change == "shape":
        truth[first] = truth[first].transpose(0, 2, 1, 3)
    elif change == "dtype":
        truth[first] = truth[first].astype(np.int16)
    elif change == "frames":
        truth[first] = truth[first][:3]
    elif change == "channels":
        truth[first] = truth[first][..., :1]
    elif change == "participant":
        truth[999, "GLASSES", first[2]] = truth[first]
    elif change == "sequence":
        truth[388, "FREE", first[2]] = truth[first]
    elif change == "serial":
        truth[388, "GLASSES", catalogue.NVS_TRAIN_SERIALS[0]] = truth[first]
    elif change == "key":
        truth["388/GLASSES"] = truth[first]
    elif change == "list":
        truth[first] = list(truth[first])
    return truth


@pytest.mark.parametrize(
    "change, message",
    [
        ("shape", r"388/GLASSES/cam_222200046.mp4 have shape \(110, 160, 3\).*expected \(160, 110, 3\)"),
        ("dtype", r"388/GLASSES/cam_222200046.mp4 have dtype int16; expected uint8"),
        ("frames", r"388/GLASSES/cam_222200046.mp4 has 3 frames; the benchmark metadata expects 4"),
        ("channels", r"have shape \(160, 110, 1\)"),
        ("participant", r"participant 999 is not in the nvs submission"),
        ("sequence", r"sequence 'FREE' of participant 388 is not submitted; expected GLASSES"),
        ("serial", r"camera '222200042' is not submitted for nvs"),
        ("key", r"Prediction key '388/GLASSES' should be a tuple"),
        ("list", r"are a list; expected a numpy, dask or xarray array"),
    ],
)
def test_bad_predictions_are_refused_before_encoding(tmp_path, nvs_truth, change, message):
    with pytest.raises(SubmissionError, match=message):
        export_submission(_bad(nvs_truth, change), tmp_path / "out.zip", "nvs", partial=True, **options("nvs"))
    assert listing(tmp_path) == []


def test_missing_videos_are_listed_unless_partial(tmp_path, nvs_truth):
    truth = {key: frames for key, frames in nvs_truth.items() if key[0] != 443}
    missing = r"3 of 15 nvs videos are missing .*443/FREE/cam_222200046.mp4.*--partial"
    with pytest.raises(SubmissionError, match=missing):
        export_submission(truth, tmp_path / "out.zip", "nvs", **options("nvs"))


@pytest.mark.parametrize("value, found", [(np.nan, "NaN values"), (1.5, r"values outside \[0, 1\] \(min 0, max 1.5\)")])
def test_failed_export_leaves_the_existing_zip_and_no_temp_files(tmp_path, nvs_truth, value, found):
    output = tmp_path / "submission.zip"
    output.write_bytes(b"previous submission")
    truth = {key: nvs_truth[key].astype(np.float32) / 255 for key in NVS_388}
    truth[NVS_388[-1]][2, 5, 5, 1] = value
    with pytest.raises(SubmissionError, match=rf"Frame 2 of 388/GLASSES/cam_222200039.mp4 has {found}"):
        export_submission(truth, output, "nvs", partial=True, overwrite=True, workers=2, **options("nvs"))
    assert output.read_bytes() == b"previous submission"
    assert listing(tmp_path) == ["submission.zip"]


def test_existing_output_needs_overwrite(tmp_path, nvs_truth):
    output = tmp_path / "submission.zip"
    output.write_bytes(b"keep")
    truth = {key: nvs_truth[key] for key in NVS_388}
    with pytest.raises(ConfigError, match="exists; pass --overwrite"):
        export_submission(truth, output, "nvs", partial=True, **options("nvs"))
    assert output.read_bytes() == b"keep"
    export_submission(truth, output, "nvs", partial=True, overwrite=True, **options("nvs"))
    assert validate_submission(output, "nvs", partial=True, **options("nvs")).ok


def test_bad_image_folders_are_refused(tmp_path, nvs_truth):
    key = NVS_388[0]
    camera = tmp_path / "pred" / "388" / "GLASSES" / f"cam_{key[2]}"
    camera.mkdir(parents=True)
    write_image(camera / "00000.png", nvs_truth[key][0])
    (camera / "notes.txt").write_text("x")
    with pytest.raises(SubmissionError, match=r"notes.txt is not a frame image"):
        export_submission(tmp_path / "pred", tmp_path / "out.zip", "nvs", partial=True, **options("nvs"))
    (camera / "notes.txt").unlink()
    (camera / "0.png").write_bytes(b"not a png")
    with pytest.raises(SubmissionError, match=r"00000.png and 0.png both claim frame 0"):
        export_submission(tmp_path / "pred", tmp_path / "out.zip", "nvs", partial=True, **options("nvs"))
    (camera / "0.png").unlink()
    (tmp_path / "pred" / "388" / "GLASSES" / "cam_123").mkdir()
    with pytest.raises(SubmissionError, match=r"cam_123 is not part of the nvs submission \(camera '123'"):
        export_submission(tmp_path / "pred", tmp_path / "out.zip", "nvs", partial=True, **options("nvs"))


# ---------------------------------------------------------------- streaming and parallelism
def test_plan_blocks_follows_chunks_and_caps_block_length():
    assert plan_blocks([2, 2, 2, 2, 1], 4) == [(0, 4), (4, 8), (8, 9)]
    assert plan_blocks([3, 3, 3], 4) == [(0, 3), (3, 6), (6, 9)]
    assert plan_blocks([1, 10, 2], 4) == [(0, 1), (1, 5), (5, 9), (9, 11), (11, 13)]
    assert plan_blocks([1] * 5, 2) == [(0, 2), (2, 4), (4, 5)]


def test_dask_frames_are_computed_block_by_block(monkeypatch):
    computed = []

    def record(block):
        computed.append(block.shape[0])
        return block

    frames = da.zeros((20, 8, 6, 3), dtype=np.uint8, chunks=(5, -1, -1, -1)).map_blocks(record, dtype=np.uint8)
    monkeypatch.setattr(sources, "BLOCK_BYTES", 3 * 8 * 6 * 3)  # three frames per block
    blocks = [block.shape[0] for block in ArrayVideo("v", frames, frames.chunks[0]).blocks()]
    assert blocks == [3, 2, 3, 2, 3, 2, 3, 2]
    assert max(computed) <= 5 and sum(blocks) == 20  # never more than one 5-frame chunk at a time


def test_read_ahead_keeps_order_passes_errors_and_stops_its_thread():
    import threading

    from nersemble_zarr.submission.encode import read_ahead

    blocks = [np.full((1, 2, 2, 3), i, np.uint8) for i in range(5)]
    assert [int(b[0, 0, 0, 0]) for b in read_ahead(iter(blocks))] == [0, 1, 2, 3, 4]

    def failing():
        yield blocks[0]
        raise SubmissionError("image 3 is broken")

    with pytest.raises(SubmissionError, match="image 3 is broken"):
        list(read_ahead(failing()))
    before = threading.active_count()
    for source in (blocks * 100, blocks[:2]):  # reader blocked on a block, or on the end marker
        reader = read_ahead(iter(source))
        next(reader)
        time.sleep(0.2)
        reader.close()  # an encode that stops early must not hang nor leave the reader thread behind
        assert threading.active_count() == before


def test_distributed_cluster_encodes_the_same_videos_as_threads(tmp_path, nvs_truth):
    from distributed import Client, LocalCluster

    truth = {key: nvs_truth[key] for key in NVS_388 + [(422, "EXP-2-eyes", s) for s in catalogue.NVS_HOLD_OUT_SERIALS]}
    store = write_store(tmp_path / "pred.zarr", truth)
    threaded, distributed = tmp_path / "threads.zip", tmp_path / "cluster.zip"
    export_submission(store, threaded, "nvs", partial=True, **options("nvs"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            report = export_submission(store, distributed, "nvs", partial=True, client=client, **options("nvs"))
            assert len(client.run(os.getpid)) == 2
    assert report.valid_videos == validate_submission(threaded, "nvs", partial=True, **options("nvs")).valid_videos
    for key, frames in truth.items():
        entry = catalogue.submission_entry(*key)
        on_cluster, on_threads = decoded(distributed, entry), decoded(threaded, entry)
        # libx264 is not bit-reproducible when encoders run concurrently (see docs/submission.md), so the two
        # encodes agree to within codec noise, and both match the ground truth of this very camera.
        assert on_cluster.shape == on_threads.shape == frames.shape
        assert psnr(on_cluster, on_threads) >= 40 and psnr(on_cluster, frames) >= 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster.zip", "pred.zarr", "threads.zip"]
