"""Write a synthetic benchmark to disk in exactly the real server's layout (the paths of ``catalogue``),
the SVFR images included.

Every file is written under a temporary name in its final folder and moved into place when complete, and
its content depends only on the config (byte-identical for the same config; mp4s decode identically).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from .. import catalogue
from ..atomic import atomic_path
from ..outputs import check_output_folder
from ..progress import Progress
from .appearance import Appearance
from .config import SyntheticConfig
from .jobs import Job, job, run_jobs
from .pointcloud import head_pointcloud, write_pcd
from .render import render_views
from .scene import camera_params, rng_for, rotation_matrices, tracking
from .svfr import render_svfr_image

VIDEO_CRF = 14
VIDEO_PRESET = "fast"
# libx264's macroblock tree gives run-to-run different bitstreams under CPU contention (seen on this project's
# machines), and the thread count changes the bitstream: both are fixed so the same config decodes identically.
VIDEO_X264_PARAMS = "no-mbtree=1"
VIDEO_THREADS = 4
VIDEO_KINDS = ("images", "alpha_maps")
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # zip entry timestamps, so npz files are byte-identical


# ---------------------------------------------------------------- what is written
def timesteps(config: SyntheticConfig, benchmark: str, participant: int, sequence: str) -> list[int]:
    """Original frame indices of a sequence's frames (NVS metadata "timesteps", tracking "frames")."""
    return tracking(config, benchmark, participant, sequence)["frames"].tolist()


def nvs_metadata(config: SyntheticConfig) -> dict:
    """Content of ``nvs/metadata.json`` for the generated participants."""
    sequences = {}
    for participant in config.nvs_participants:
        sequence = catalogue.NVS_SEQUENCES[participant]
        sequences[str(participant)] = {
            "sequence_name": sequence,
            "timesteps": timesteps(config, "nvs", participant, sequence),
        }
    return {"sequences": sequences}


def mono_metadata(config: SyntheticConfig) -> dict:
    """Content of ``mono_flame_avatar/metadata.json`` (train and test sequences) for the generated participants."""
    participants = {}
    for participant in config.mono_participants:
        participants[str(participant)] = {
            "sequences_metadata": {
                sequence: {"n_frames": config.n_frames_of("mono_flame_avatar", participant, sequence)}
                for sequence in config.sequences_of("mono_flame_avatar", participant)
            }
        }
    return {"participants_metadata": participants}


def older_tracking(config: SyntheticConfig, participant: int, sequence: str) -> dict[str, np.ndarray]:
    """The older ``flame2023_tracking.npz``: same keys and shapes as v2, slightly different values."""
    params = tracking(config, "mono_flame_avatar", participant, sequence)
    rng = rng_for(config.seed, "tracking_v1", participant, sequence)
    older = dict(params)
    older["expression"] = (params["expression"] * 0.9).astype(np.float32)
    older["rotation"] = (params["rotation"] + rng.normal(scale=0.005, size=3)).astype(np.float32)
    older["rotation_matrices"] = rotation_matrices(older["rotation"]).astype(np.float32)
    return older


def _jobs(config: SyntheticConfig) -> list[Job]:
    """Every write, in a sensible order (small files first per participant); each is independent."""
    jobs = []
    for benchmark in catalogue.BENCHMARKS:
        if not config.participants_of(benchmark):
            continue
        jobs.append(job(f"{benchmark}/{catalogue.METADATA_FILE}", _write_metadata, config=config, benchmark=benchmark))
        for participant in config.participants_of(benchmark):
            path = f"{benchmark}/{catalogue.calibration_path(participant)}"
            jobs.append(job(path, _write_calibration, config=config, benchmark=benchmark, participant=participant))
            for sequence in config.sequences_of(benchmark, participant):
                jobs += _sequence_jobs(config, benchmark, participant, sequence)
    for participant in config.svfr_participants:
        for key in config.svfr_keys_of(participant):
            path = f"{catalogue.SVFR}/{catalogue.svfr_image_path(participant, key)}"
            jobs.append(job(path, _write_svfr_image, config=config, participant=participant, key=key))
    return jobs


def _sequence_jobs(config: SyntheticConfig, benchmark: str, participant: int, sequence: str) -> list[Job]:
    jobs = []
    where = {"config": config, "participant": participant, "sequence": sequence}
    if benchmark == "mono_flame_avatar":
        for name in (catalogue.TRACKING_FILE, catalogue.TRACKING_FILE_V1):
            path = f"{benchmark}/{catalogue.tracking_path(participant, sequence, name)}"
            jobs.append(job(path, _write_tracking, name=name, **where))
    for serial in config.video_serials_of(benchmark, sequence):
        paths = tuple(
            f"{benchmark}/{catalogue.video_path(participant, sequence, serial, kind)}" for kind in VIDEO_KINDS
        )
        jobs.append(job(paths, _write_videos, benchmark=benchmark, serial=serial, **where))
    if benchmark == "nvs":
        for index, timestep in enumerate(timesteps(config, benchmark, participant, sequence)):
            path = f"{benchmark}/{catalogue.pointcloud_path(participant, sequence, timestep)}"
            jobs.append(job(path, _write_pointcloud, index=index, **where))
    return jobs


def expected_files(config: SyntheticConfig) -> list[str]:
    """Every file ``generate`` writes, relative to the root (``nvs/388/calibration/camera_params.json``, ...)."""
    return [path for each in _jobs(config) for path in each.files]


# ---------------------------------------------------------------- writers (each file atomically)
def _write_json(path: Path, content: dict) -> None:
    with atomic_path(path) as temp:
        temp.write_text(json.dumps(content, indent=2) + "\n")


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed, pickle-free npz (what ``np.savez`` writes) with fixed entry timestamps."""
    with atomic_path(path) as temp, zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(value), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{key}.npy", date_time=FIXED_ZIP_TIME), buffer.getvalue())


def _write_metadata(root: Path, *, config: SyntheticConfig, benchmark: str) -> None:
    content = nvs_metadata(config) if benchmark == "nvs" else mono_metadata(config)
    _write_json(root / benchmark / catalogue.METADATA_FILE, content)


def _write_calibration(root: Path, *, config: SyntheticConfig, benchmark: str, participant: int) -> None:
    cameras = camera_params(config, benchmark, participant)
    content = {
        group: {serial: matrix.tolist() for serial, matrix in matrices.items()} for group, matrices in cameras.items()
    }
    _write_json(root / benchmark / catalogue.calibration_path(participant), content)


def _write_tracking(root: Path, *, config: SyntheticConfig, participant: int, sequence: str, name: str) -> None:
    if name == catalogue.TRACKING_FILE:
        arrays = tracking(config, "mono_flame_avatar", participant, sequence)
    else:
        arrays = older_tracking(config, participant, sequence)
    _write_npz(root / "mono_flame_avatar" / catalogue.tracking_path(participant, sequence, name), arrays)


def _write_videos(
    root: Path, *, config: SyntheticConfig, benchmark: str, participant: int, sequence: str, serial: str
) -> None:
    """Render one camera of a sequence into its images and alpha_maps mp4s (alpha as grey RGB)."""
    from ..video import VideoWriter

    width, height = config.frame_size(benchmark)
    fps = catalogue.SPECS[benchmark].fps
    paths = [root / benchmark / catalogue.video_path(participant, sequence, serial, kind) for kind in VIDEO_KINDS]
    with ExitStack() as stack:
        images_temp, alpha_temp = (stack.enter_context(atomic_path(path)) for path in paths)
        images, alpha = (
            stack.enter_context(VideoWriter(
                temp, width=width, height=height, fps=fps, crf=VIDEO_CRF, preset=VIDEO_PRESET,
                threads=VIDEO_THREADS, x264_params=VIDEO_X264_PARAMS,
            ))
            for temp in (images_temp, alpha_temp)
        )
        for rgb, mask in render_views(config, benchmark, participant, sequence, serial):
            images.write(rgb)
            alpha.write(np.repeat(mask[..., None], 3, axis=-1))


def _write_pointcloud(root: Path, *, config: SyntheticConfig, participant: int, sequence: str, index: int) -> None:
    params = tracking(config, "nvs", participant, sequence)
    cameras = camera_params(config, "nvs", participant)["world_2_cam"]
    centres = np.array([-cameras[s][:3, :3].T @ cameras[s][:3, 3] for s in catalogue.NVS_TRAIN_SERIALS])
    appearance = Appearance.of(config.seed, "nvs", participant)
    keys = ("nvs", participant, sequence)
    arrays = head_pointcloud(config.seed, keys, config.n_points, params, index, appearance, centres)
    path = root / "nvs" / catalogue.pointcloud_path(participant, sequence, int(params["frames"][index]))
    with atomic_path(path) as temp:
        write_pcd(temp, *arrays)


def _write_svfr_image(root: Path, *, config: SyntheticConfig, participant: int, key: catalogue.ImageKey) -> None:
    from ..export_frames.pixels import write_png

    path = root / catalogue.SVFR / catalogue.svfr_image_path(participant, key)
    write_png(path, render_svfr_image(config, participant, key))


# ---------------------------------------------------------------- entry point
def generate(
    root: str | os.PathLike,
    config: SyntheticConfig | None = None,
    *,
    workers: int = 1,
    progress: Progress | None = None,
) -> Path:
    """Write the synthetic benchmark of ``config`` (default: ``SyntheticConfig.tiny()``) under ``root``.

    Files land at ``root/{benchmark}/{relative path}`` as on the real server, the same whatever ``workers``
    (processes; 1 writes in this process). ``progress`` is told the number of files (``set_total``), then
    each file's relative path (``describe``) and called with 1 once it is written. Returns ``root`` as a Path.
    """
    config = SyntheticConfig.tiny() if config is None else config
    root = check_output_folder(root, "synthetic benchmark folder")
    run_jobs(root, _jobs(config), workers=workers, progress=progress)
    return root
