"""Write a synthetic NeRSemble v2 dataset in exactly the relative layout the official ``nersemble-data`` kit
downloads and reads:

* ``metadata_participants.csv`` and ``metadata_sequences.csv`` (columns ``ID, wears_glasses, BACKGROUND,
  <sequence names>``; a cell ``x`` or ``m`` means the participant has the sequence, an empty cell that it has not);
* ``{p:03d}/calibration/camera_params.json``: ``world_2_cam`` per serial and ONE ``intrinsics`` 3x3 for all;
* ``{p:03d}/calibration/color_calibration.json``: per serial a near-identity 3 x terms colour matrix;
* ``{p:03d}/sequences/{sequence}/images/cam_{serial}.mp4``: H.264 at 73 fps, the rendered head over the studio;
* ``{p:03d}/sequences/BACKGROUND/image_{serial}.jpg``: the empty studio seen by each camera.

The head, its look and the camera rig are the synthetic benchmark's; every file depends only on the config and
is written under a temporary name and moved into place when complete.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_atomic
from ..inputs.dataset_index import BACKGROUND, PARTICIPANTS_CSV, SEQUENCES_CSV
from ..outputs import check_output_folder
from ..progress import Progress
from ..sources.dataset import background_path, calibration_path, colour_calibration_path, video_path
from ..video import VideoWriter
from .appearance import Appearance, albedo
from .dataset_config import DATASET_FPS, SyntheticDatasetConfig
from .generator import VIDEO_CRF, VIDEO_PRESET, VIDEO_THREADS, VIDEO_X264_PARAMS
from .jobs import Job, job, run_jobs
from .render import render_frame
from .scene import FOCAL_PER_WIDTH, rig_pose, rng_for, rotation_matrices, smooth_curves

SOURCE = "dataset"  # the name that seeds the dataset's random values, apart from the benchmark's
JPEG_QUALITY = 95


# ---------------------------------------------------------------- content
def dataset_camera_params(config: SyntheticDatasetConfig, participant: int) -> dict:
    """``camera_params.json`` of a participant: ``{"world_2_cam": {serial: 4x4}, "intrinsics": 3x3}``, the
    intrinsics shared by all cameras (full 2200x3208 pixels when the config's scale is 1)."""
    width, height = config.frame_size()
    rng = rng_for(config.seed, "cameras", SOURCE, participant)
    world_2_cam = {serial: rig_pose(rng, serial) for serial in config.serials}
    focal = FOCAL_PER_WIDTH["nvs"] * width * rng.uniform(0.98, 1.02)
    centre = np.array([width, height]) / 2 + rng.uniform(-0.01, 0.01, 2) * width
    intrinsics = np.array([[focal, 0.0, centre[0]], [0.0, focal, centre[1]], [0.0, 0.0, 1.0]])
    return {"world_2_cam": world_2_cam, "intrinsics": intrinsics}


def dataset_color_calibration(config: SyntheticDatasetConfig, participant: int) -> dict[str, np.ndarray]:
    """Per serial a 3 x terms colour matrix close to the identity: a few percent of gain and cross-talk
    per channel, and small higher-order terms (when terms > 3) as a fitted polynomial has."""
    terms = config.colour_terms(participant)
    matrices = {}
    for serial in config.serials:
        rng = rng_for(config.seed, "colour", SOURCE, participant, serial)
        matrix = np.zeros((3, terms))
        matrix[:, :3] = np.diag(rng.uniform(0.9, 1.1, 3)) + rng.normal(scale=0.02, size=(3, 3))
        matrix[:, 3:] = rng.normal(scale=0.01, size=(3, terms - 3))
        matrices[serial] = matrix
    return matrices


def background_image(config: SyntheticDatasetConfig, participant: int, serial: str) -> np.ndarray:
    """The empty studio seen by one camera: a lit grey wall (vertical gradient, soft vignette, sensor noise)."""
    width, height = config.frame_size()
    rng = rng_for(config.seed, "background", SOURCE, participant, serial)
    u = (np.arange(width, dtype=np.float32) / width - 0.5)[None, :, None]
    v = (np.arange(height, dtype=np.float32) / height - 0.5)[:, None, None]
    wall = rng.uniform(0.45, 0.6, 3).astype(np.float32) * 255 * (1.05 - 0.3 * v)
    picture = wall * (1.0 - 0.35 * (u**2 + v**2)) + rng.standard_normal((height, width, 3), dtype=np.float32)
    return np.clip(np.round(picture), 0, 255).astype(np.uint8)


def _motion(config: SyntheticDatasetConfig, participant: int, sequence: str) -> dict[str, np.ndarray]:
    """Smooth head motion and face parameters of one sequence (the arrays the benchmark's renders use)."""
    n = config.n_frames
    rng = rng_for(config.seed, "motion", SOURCE, participant, sequence)
    rotation = smooth_curves(rng, n, np.array([0.15, 0.35, 0.08]))
    jaw = smooth_curves(rng, n, np.array([0.12, 0.02, 0.01]))
    jaw[:, 0] += 0.12
    return {
        "rotation_matrices": rotation_matrices(rotation),
        "translation": smooth_curves(rng, n, np.array([0.015, 0.01, 0.015])),
        "expression": smooth_curves(rng, n, np.array([1.5, 1.2])),
        "jaw": jaw,
        "eyes": smooth_curves(rng, n, np.array([0.1, 0.25])),
    }


def dataset_frames(config: SyntheticDatasetConfig, participant: int, sequence: str, serial: str):
    """Yield the (H, W, 3) uint8 frames of one camera's video: the head composited over the background."""
    width, height = config.frame_size()
    cameras = dataset_camera_params(config, participant)
    background = background_image(config, participant, serial).astype(np.float32)
    motion = _motion(config, participant, sequence)
    appearance = Appearance.of(config.seed, SOURCE, participant)
    for index in range(config.n_frames):
        def colours(points: np.ndarray, index: int = index) -> np.ndarray:
            return albedo(points, appearance, motion["expression"][index], motion["jaw"][index], motion["eyes"][index])

        rgb, alpha = render_frame(
            cameras["world_2_cam"][serial], cameras["intrinsics"], width, height,
            motion["rotation_matrices"][index], motion["translation"][index], 1.0, colours,
            rng_for(config.seed, "noise", SOURCE, participant, sequence, serial, index),
        )
        # The render is premultiplied by alpha: over a background b it is rgb + b * (1 - alpha).
        frame = rgb + background * (1.0 - alpha[..., None] / 255.0)
        yield np.round(np.clip(frame, 0, 255)).astype(np.uint8)


def _csv_text(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def sequences_csv(config: SyntheticDatasetConfig) -> bytes:
    """``metadata_sequences.csv``: one row per participant, ``x``/``m``/empty per sequence column."""
    rows = [["ID", "wears_glasses", BACKGROUND, *config.sequences]]
    for participant in config.participants:
        cells = [config.cell(participant, sequence) for sequence in config.sequences]
        rows.append([str(participant), str(int(config.wears_glasses(participant))), "x", *cells])
    return _csv_text(rows)


def participants_csv(config: SyntheticDatasetConfig) -> bytes:
    """``metadata_participants.csv``: one row per participant."""
    return _csv_text([["ID"]] + [[str(participant)] for participant in config.participants])


# ---------------------------------------------------------------- writing (one job per file, each atomic)
def _dataset_jobs(config: SyntheticDatasetConfig) -> list[Job]:
    """Every write, in the order of ``expected_dataset_files``; each is independent."""
    jobs = [job(PARTICIPANTS_CSV, _write_csv, config=config, relative=PARTICIPANTS_CSV),
            job(SEQUENCES_CSV, _write_csv, config=config, relative=SEQUENCES_CSV)]
    for participant in config.participants:
        where = {"config": config, "participant": participant}
        jobs.append(job(calibration_path(participant), _write_calibration, **where))
        jobs.append(job(colour_calibration_path(participant), _write_color_calibration, **where))
        jobs += [job(background_path(participant, serial), _write_background, serial=serial, **where)
                 for serial in config.serials]
        jobs += [job(video_path(participant, sequence, serial), _write_video, sequence=sequence, serial=serial, **where)
                 for sequence in config.sequences_of(participant) for serial in config.serials]
    return jobs


def expected_dataset_files(config: SyntheticDatasetConfig) -> list[str]:
    """Every file ``generate_dataset`` writes, relative to its root, in the order it writes them (one worker)."""
    return [path for each in _dataset_jobs(config) for path in each.files]


def _write_json(path: Path, content: dict) -> None:
    write_atomic(path, (json.dumps(content, indent=2) + "\n").encode())


def _write_csv(root: Path, *, config: SyntheticDatasetConfig, relative: str) -> None:
    write_atomic(root / relative, participants_csv(config) if relative == PARTICIPANTS_CSV else sequences_csv(config))


def _write_calibration(root: Path, *, config: SyntheticDatasetConfig, participant: int) -> None:
    cameras = dataset_camera_params(config, participant)
    _write_json(root / calibration_path(participant), {
        "world_2_cam": {serial: matrix.tolist() for serial, matrix in cameras["world_2_cam"].items()},
        "intrinsics": cameras["intrinsics"].tolist(),
    })


def _write_color_calibration(root: Path, *, config: SyntheticDatasetConfig, participant: int) -> None:
    colour = dataset_color_calibration(config, participant)
    _write_json(root / colour_calibration_path(participant), {s: m.tolist() for s, m in colour.items()})


def _write_background(root: Path, *, config: SyntheticDatasetConfig, participant: int, serial: str) -> None:
    import imagecodecs

    picture = background_image(config, participant, serial)
    write_atomic(root / background_path(participant, serial), imagecodecs.jpeg8_encode(picture, level=JPEG_QUALITY))


def _write_video(root: Path, *, config: SyntheticDatasetConfig, participant: int, sequence: str, serial: str) -> None:
    width, height = config.frame_size()
    with atomic_path(root / video_path(participant, sequence, serial)) as temp, VideoWriter(
        temp, width=width, height=height, fps=DATASET_FPS, crf=VIDEO_CRF, preset=VIDEO_PRESET,
        threads=VIDEO_THREADS, x264_params=VIDEO_X264_PARAMS,
    ) as writer:
        writer.write_all(dataset_frames(config, participant, sequence, serial))


def generate_dataset(
    root: str | os.PathLike, config: SyntheticDatasetConfig | None = None, *, workers: int = 1,
    progress: Progress | None = None,
) -> Path:
    """Write the synthetic dataset of ``config`` (default: the small ``SyntheticDatasetConfig()``) under ``root``.

    The same files whatever ``workers`` (processes; 1 writes in this process, in the order of
    ``expected_dataset_files``). ``progress`` is told the number of files, then each file's relative path and
    called with 1 once it is written. Returns ``root`` as a Path.
    """
    config = SyntheticDatasetConfig() if config is None else config
    root = check_output_folder(root, "synthetic dataset folder")
    run_jobs(root, _dataset_jobs(config), workers=workers, progress=progress)
    return root
