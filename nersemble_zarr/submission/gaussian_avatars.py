"""GaussianAvatars' render output as submission predictions, mapped back through the exported render targets.

``render.py -m MODEL --target_path TARGET`` renders every view of TARGET's ``transforms_train.json``, then
``_val`` and ``_test`` (in that order) into ``MODEL/<TARGET folder name>/ours_<iteration>/renders/{i:05d}.png``.
A render target written by ``export-frames --format vhap --render-target`` names its sequence in
``nersemble_export.json`` and each view's camera (``camera_id``) and frame (``timestep_index_original``) in the
transforms files, so rendered image ``i`` is frame ``timestep_index_original`` of that camera's video.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import SubmissionError
from ..inputs.jsontext import TRANSFORMS_MAX_BYTES, kind_of, read_json_file
from ..inputs.origin import Origin
from .expected import VideoKey
from .sources import read_image

SPLIT_ORDER = ("transforms_train.json", "transforms_val.json", "transforms_test.json")
SETTINGS_FILE = "nersemble_export.json"
_ITERATION = re.compile(r"^ours_(\d+)$")


def render_folder(model: Path, target: Path) -> Path:
    """``MODEL/<target name>/ours_<latest iteration>/renders``, where render.py writes a target's views."""
    parent = Path(model) / Path(target).name
    iterations = sorted(
        (int(match.group(1)), path) for path in (parent.iterdir() if parent.is_dir() else [])
        if (match := _ITERATION.match(path.name))
    )
    if not iterations:
        raise SubmissionError(
            f"{parent} holds no ours_<iteration> folder; render the target first with GaussianAvatars' "
            f"render.py -m {model} --target_path {target}."
        )
    return iterations[-1][1] / "renders"


def rendered_views(renders: Path, target: Path) -> dict[VideoKey, list[Path]]:
    """(participant, sequence, serial) -> the rendered PNGs of that video in frame order."""
    settings = render_target_settings(target)
    views = [frame for name in SPLIT_ORDER for frame in _views(Path(target) / name)]
    files = sorted(Path(renders).glob("*.png")) if Path(renders).is_dir() else []
    if len(files) != len(views) or [f.name for f in files] != [f"{i:05d}.png" for i in range(len(views))]:
        raise SubmissionError(
            f"{renders} holds {len(files)} rendered PNG(s), expected 00000.png..{len(views) - 1:05d}.png, one per "
            f"view of {target}; render the target again."
        )
    videos: dict[VideoKey, list[tuple[int, Path]]] = {}
    key_of = (int(settings["participant"]), str(settings["sequence"]))
    for view, path in zip(views, files):
        videos.setdefault((*key_of, str(view["camera_id"])), []).append((int(view["timestep_index_original"]), path))
    return {key: [path for _, path in sorted(frames)] for key, frames in videos.items()}


def render_target_settings(target: Path) -> dict:
    """The settings file of a render target (refusing any other folder, and settings it cannot use)."""
    path = Path(target) / SETTINGS_FILE
    settings = _read_json(path)
    if not settings.get("render_target"):
        raise SubmissionError(
            f"{target} is not a render target; write one with `nersemble-zarr export-frames --format vhap "
            "--render-target`."
        )
    shifts = settings.get("principal_point_shifts", {})
    if not (_whole(settings.get("participant")) and isinstance(settings.get("sequence"), str)
            and isinstance(shifts, dict)
            and all(isinstance(v, list) and len(v) == 2 and all(map(_whole, v)) for v in shifts.values())):
        raise SubmissionError(f"{path} does not name a participant, a sequence and whole-pixel principal point "
                              "shifts; export the render target again.")
    return settings


def rendered_predictions(model: Path, targets: list[Path]) -> dict[VideoKey, object]:
    """Predictions (a mapping of lazy frame arrays) from GaussianAvatars' renders of every render target.

    A target exported with ``--centre-principal-point`` was rendered with its frames shifted by whole pixels;
    the renders are shifted back (the strip that left the picture is filled with the target's background).
    """
    import dask
    import dask.array as da

    from ..export_frames.centring import shift_picture

    def read_shifted(path: Path, shape: tuple[int, ...], shift: tuple[int, int], fill: int) -> np.ndarray:
        image = read_image(path)
        if image.shape != shape:
            raise SubmissionError(f"Rendered image {path} has size {image.shape[1]}x{image.shape[0]}; the first "
                                  f"render of its camera is {shape[1]}x{shape[0]}.")
        return shift_picture(image, shift, fill)

    predictions: dict[VideoKey, object] = {}
    for target in targets:
        settings = render_target_settings(target)
        shifts = settings.get("principal_point_shifts", {})
        fill = 255 if settings.get("background") == "white" else 0
        for key, paths in rendered_views(render_folder(model, target), target).items():
            dx, dy = shifts.get(key[2], (0, 0))
            shape = read_image(paths[0]).shape
            frames = [
                da.from_delayed(dask.delayed(read_shifted)(path, shape, (-int(dx), -int(dy)), fill), shape, np.uint8)
                for path in paths
            ]
            predictions[key] = da.stack(frames)
    return predictions


def _read_json(path: Path) -> dict:
    origin = Origin(f"The render-target file {path}", "export the render target again")
    document = read_json_file(path, origin, TRANSFORMS_MAX_BYTES)
    if not isinstance(document, dict):
        raise SubmissionError(f"{origin.label} holds {kind_of(document)}, not a JSON object; export the render target "
                              "again.")
    return document


def _views(path: Path) -> list[dict]:
    """The frames of a render target's transforms file, each naming its camera and original frame index."""
    frames = _read_json(path).get("frames")
    if not isinstance(frames, list) or not all(isinstance(f, dict) and isinstance(f.get("camera_id"), (str, int))
                                               and _whole(f.get("timestep_index_original")) for f in frames):
        raise SubmissionError(f"{path} does not list frames with a camera_id and a timestep_index_original; export "
                              "the render target again.")
    return frames


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
