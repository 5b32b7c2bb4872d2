"""SVFR meshes from FLAME parameters per image key, through the project's batched FLAME.

Keys that share a shape vector are evaluated together as the timesteps of one FLAME call. The neutral mesh
is FLAME with the shape alone (no expression, pose, rotation or translation, scale 1); the posed one uses
every parameter.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from .. import catalogue
from ..errors import FlameError, SubmissionError, shown
from ..real_values import real_array
from ..schema import FLAME_N_EXPRESSION, FLAME_N_SHAPE
from .svfr_predictions import Mesh, MeshSource, SvfrKey, check_mesh, parse_key

PARAMETER_SIZES = {
    "shape": FLAME_N_SHAPE, "expression": FLAME_N_EXPRESSION, "jaw": 3, "neck": 3, "eyes": 6,
    "rotation": 3, "translation": 3,
}
REQUIRED = {"posed": ("shape", "expression", "jaw", "neck", "eyes", "rotation"), "neutral": ("shape",)}
_PER_KEY = ("expression", "rotation", "translation", "jaw", "neck", "eyes")


def _parameters(key: Any, values: Mapping[str, Any], tasks: tuple[str, ...]) -> dict[str, np.ndarray]:
    """One key's parameters as float64 arrays of their FLAME sizes (absent optional ones as zeros)."""
    if not isinstance(values, Mapping):
        raise SubmissionError(f"The FLAME parameters of {shown(key)} are a {type(values).__name__}, not a mapping.")
    needed = {name for task in tasks for name in REQUIRED[task]}
    missing = sorted(needed - set(values))
    if missing:
        raise SubmissionError(f"The FLAME parameters of {shown(key)} lack {', '.join(missing)}.")
    unknown = sorted(set(values) - set(PARAMETER_SIZES) - {"scale"})
    if unknown:
        raise SubmissionError(f"The FLAME parameters of {shown(key)} hold unknown names: {', '.join(unknown)}.")
    params = {}
    for name, size in PARAMETER_SIZES.items():
        what = f"The FLAME parameter {name!r} of {shown(key)}"
        value = real_array(values.get(name, np.zeros(size)), what).astype(np.float64).reshape(-1)
        if value.shape != (size,) or not np.isfinite(value).all():
            raise SubmissionError(
                f"The FLAME parameter {name!r} of {shown(key)} has {value.size} values or non-finite ones; "
                f"expected {size} finite numbers."
            )
        params[name] = value
    scale = real_array(values.get("scale", 1.0), f"The FLAME parameter 'scale' of {shown(key)}")
    if scale.size != 1 or not np.isfinite(scale.astype(np.float64)).all():
        raise SubmissionError(f"The FLAME parameter 'scale' of {shown(key)} is {shown(scale.tolist())}; "
                              "expected one finite number.")
    params["scale"] = scale.astype(np.float64).reshape(())
    return params


def flame_sources(
    predictions: Mapping[Any, Mapping[str, Any]], tasks: tuple[str, ...], flame_dir: str | os.PathLike | None,
    device: str = "auto",
) -> list[MeshSource]:
    """Evaluate FLAME for every key and task; the sources hand out the already computed meshes."""
    from ..flame import FlameModel, FlameParameters

    parsed: dict[SvfrKey, dict[str, np.ndarray]] = {}
    for key, values in predictions.items():
        parsed[parse_key(key)] = _parameters(key, values, tasks)
    try:
        model = FlameModel.load(flame_dir, device=device)
    except FlameError as error:
        raise SubmissionError(f"FLAME parameters need the FLAME model: {error}") from error
    faces = model.faces
    groups: dict[tuple[bytes, float], list[SvfrKey]] = {}
    for key, params in parsed.items():
        groups.setdefault((params["shape"].tobytes(), float(params["scale"])), []).append(key)
    sources = []
    for keys in groups.values():
        first = parsed[keys[0]]
        identity = model.identity(first["shape"], float(first["scale"]))
        if "posed" in tasks:
            stacked = {name: np.stack([parsed[k][name] for k in keys]).astype(np.float32) for name in _PER_KEY}
            posed = model.evaluate(FlameParameters(shape=first["shape"], scale=float(first["scale"]), **stacked),
                                   identity=identity).vertices
            sources += [_source(k, "posed", posed[i], faces) for i, k in enumerate(keys)]
        if "neutral" in tasks:
            zeros = {name: np.zeros((1, PARAMETER_SIZES[name]), np.float32) for name in _PER_KEY}
            neutral = model.evaluate(FlameParameters(shape=first["shape"], scale=1.0, **zeros)).vertices[0]
            sources += [_source(k, "neutral", neutral, faces) for k in keys]
    return sources


def _source(key: SvfrKey, task: str, vertices: np.ndarray, faces: np.ndarray) -> MeshSource:
    participant, image = key
    label = f"The {task} FLAME mesh of {participant:03d}/{catalogue.svfr_folder(image)}"
    mesh: Mesh = check_mesh(label, vertices, faces)
    return MeshSource(participant, image, task, label, lambda: mesh)
