"""Find the predicted SVFR meshes in what the user hands in, and check each before anything is written.

Accepted predictions (a task is ``posed`` or ``neutral``; a key is ``(participant, sequence, timestep, serial)``):

- a folder mirroring the fetched ``svfr`` folder: ``PRED/{participant:03d}/{sequence}_{timestep}_{serial}/``
  (the download's unpadded timestep, or padded to 3 digits as in the zip) holding ``mesh_{task}.ply`` or
  ``.obj`` and, for meshes not of FLAME topology, ``landmarks_{task}.npy`` (7, 3);
- a mapping ``task -> {key: mesh}``, a mesh being ``(vertices, faces)``, ``(vertices, faces, landmarks)`` or
  a vertices array (V, 3) of FLAME topology, which takes FLAME's faces;
- FLAME parameters, ``SvfrFlamePredictions({key: {name: array}})``: ``shape`` (300,), ``expression`` (100,),
  ``jaw``, ``neck`` (3,), ``eyes`` (6,), and for posed meshes ``rotation`` (3,), optional ``translation`` (3,)
  and ``scale``; the neutral mesh comes from the shape alone, the posed one from everything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from .. import catalogue
from ..catalogue import ImageKey
from ..errors import SubmissionError, shown
from ..inputs.npy import NpyError, read_npy
from ..real_values import check_real, real_array
from .expected import listed
from .folders import refuse_link, visible_entries
from .meshfile import MeshFileError, read_mesh_bytes, server_vertex_count

SvfrKey = tuple[int, ImageKey]  # (participant, image key)
MAX_MESH_FILE_BYTES = 512 * 2**20
MAX_LANDMARKS_BYTES = 2**20
MESH_SUFFIXES = (".ply", ".obj")


@dataclass(frozen=True)
class Mesh:
    """One checked mesh: vertices (V, 3) float32, faces (F, 3) int32, NoW landmarks (7, 3) float32 or None."""

    vertices: np.ndarray
    faces: np.ndarray
    landmarks: np.ndarray | None


@dataclass(frozen=True)
class MeshSource:
    """Where one submission mesh comes from; ``load()`` gives its Mesh (checked by ``check_mesh``)."""

    participant: int
    key: ImageKey
    task: str
    label: str  # names the mesh in errors: a file, or the key in the mapping
    load: Callable[[], Mesh]

    @property
    def entry(self) -> str:
        return catalogue.svfr_mesh_entry(self.participant, self.key, self.task)


class SvfrFlamePredictions(dict):
    """FLAME parameters per image key, ``{(participant, sequence, timestep, serial): {name: array}}``."""


def all_svfr_keys() -> list[SvfrKey]:
    """Every (participant, image key) of the benchmark, in catalogue order."""
    return [(p, key) for p, keys in catalogue.svfr_image_keys().items() for key in keys]


def check_mesh(label: str, vertices: Any, faces: Any, landmarks: Any = None) -> Mesh:
    """Check one mesh as the server will read it; raise a SubmissionError naming ``label`` otherwise."""
    vertices, faces = real_array(vertices, f"{label}: the vertices array"), np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1:] != (3,) or not len(vertices):
        raise SubmissionError(f"{label}: the vertices have shape {vertices.shape}; expected (V, 3) with V > 0.")
    if not np.isfinite(vertices.astype(np.float64)).all():
        raise SubmissionError(f"{label}: the vertices hold NaN, infinite or non-numeric values.")
    if faces.ndim != 2 or faces.shape[1:] != (3,) or not len(faces) or not np.issubdtype(faces.dtype, np.integer):
        raise SubmissionError(
            f"{label}: the faces have shape {faces.shape} ({faces.dtype}); expected integer triangles (F, 3), F > 0."
        )
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise SubmissionError(
            f"{label}: face indices run {faces.min()}..{faces.max()}, outside the {len(vertices)} vertices."
        )
    if landmarks is not None:
        landmarks = real_array(landmarks, f"{label}: the landmarks array")
        expected = (catalogue.SVFR_N_LANDMARKS, 3)
        if landmarks.shape != expected:
            raise SubmissionError(f"{label}: the landmarks have shape {landmarks.shape}; expected {expected}.")
        if not np.isfinite(landmarks.astype(np.float64)).all():
            raise SubmissionError(f"{label}: the landmarks hold NaN or infinite values.")
        landmarks = landmarks.astype(np.float32)
    elif (problem := flame_topology_problem(vertices, faces)) is not None:
        raise SubmissionError(f"{label}: {problem}")
    return Mesh(vertices.astype(np.float32), faces.astype(np.int32), landmarks)


def flame_topology_problem(vertices: np.ndarray, faces: np.ndarray) -> str | None:
    """Why a mesh without landmarks is not taken as FLAME topology by the server (None when it is)."""
    flame, needs = catalogue.SVFR_FLAME_VERTICES, f"so it needs its {catalogue.SVFR_N_LANDMARKS} NoW landmarks " \
        "(landmarks_{task}.npy, shape (7, 3))."
    if len(vertices) != flame:
        return f"the mesh has {len(vertices)} vertices, not FLAME's {flame}, {needs}"
    kept = server_vertex_count(vertices, faces)
    if kept != flame:
        return (f"the server's reader (trimesh) keeps {kept} of its {flame} vertices (it drops vertices no face uses "
                f"and merges coincident ones), {needs}")
    return None


def parse_key(key: Any) -> SvfrKey:
    """A user's ``(participant, sequence, timestep, serial)`` as a catalogue key, or a SubmissionError."""
    if not (isinstance(key, tuple) and len(key) == 4):
        raise SubmissionError(
            f"The prediction key {shown(key)} is not (participant, sequence, timestep, serial), "
            "e.g. (17, 'EXP-4-lips', 6, '221501007')."
        )
    participant, sequence, timestep, serial = key
    try:
        found = (int(participant), ImageKey(str(sequence), int(timestep), str(serial)))
    except (TypeError, ValueError):
        found = None
    if found is None or found[0] not in catalogue.SVFR_PARTICIPANTS or found[1] not in catalogue.svfr_image_keys()[found[0]]:
        raise SubmissionError(f"The prediction key {shown(key)} is not one of the benchmark's 391 SVFR images.")
    return found


def collect_svfr_predictions(
    predictions: Any,
    *,
    tasks: tuple[str, ...] | None = None,
    partial: bool = False,
    flame_dir: str | os.PathLike | None = None,
    device: str = "auto",
) -> list[MeshSource]:
    """The meshes to write, in catalogue order, posed before neutral; a task is complete unless ``partial``.

    ``tasks`` narrows what is taken (None: every task found; FLAME parameters make both). Unknown keys,
    misnamed folders and missing meshes are refused before any mesh is read.
    """
    tasks = tuple(catalogue.check_svfr_task(t) for t in (tasks or catalogue.SVFR_TASKS))
    if isinstance(predictions, SvfrFlamePredictions):
        from .svfr_flame import flame_sources

        found = flame_sources(predictions, tasks, flame_dir, device)
    elif isinstance(predictions, Mapping):
        found = _mapping_sources(predictions, tasks, flame_dir)
    elif isinstance(predictions, (str, os.PathLike)):
        found = _folder_sources(Path(predictions), tasks)
    else:
        raise SubmissionError(
            f"Cannot read SVFR predictions from a {type(predictions).__name__}; give a folder, a mapping "
            "task -> {key: mesh} or SvfrFlamePredictions."
        )
    if not found:
        raise SubmissionError(f"No SVFR mesh ({' or '.join(tasks)}) was found in the predictions.")
    by_task = {task: {(s.participant, s.key): s for s in found if s.task == task} for task in tasks}
    sources = []
    for task, meshes in by_task.items():
        if not meshes:
            continue
        missing = [catalogue.svfr_mesh_entry(p, k, task) for p, k in all_svfr_keys() if (p, k) not in meshes]
        if missing and not partial:
            raise SubmissionError(
                f"{len(missing)} of 391 {task} meshes are missing from the predictions ({listed(missing)}); a task "
                "is all 391 images or absent: add them, or pass --partial for a quick check."
            )
        sources += [meshes[k] for k in all_svfr_keys() if k in meshes]
    return sources


def _mapping_sources(predictions: Mapping, tasks: tuple[str, ...], flame_dir) -> list[MeshSource]:
    unknown = [t for t in predictions if t not in catalogue.SVFR_TASKS]
    if unknown:
        raise SubmissionError(
            f"The predictions' key {shown(unknown[0])} is not a task; give {{'posed': {{key: mesh}}, "
            "'neutral': {key: mesh}} (or SvfrFlamePredictions for FLAME parameters)."
        )
    faces = _FlameFaces(flame_dir)
    sources = []
    for task in tasks:
        for key, mesh in (predictions.get(task) or {}).items():
            participant, image = parse_key(key)
            label = f"The {task} mesh of {participant:03d}/{catalogue.svfr_folder(image)}"
            sources.append(MeshSource(participant, image, task, label, _mapped(label, mesh, faces)))
    return sources


class _FlameFaces:
    """FLAME's triangles, loaded once when a bare vertices array first needs them."""

    def __init__(self, flame_dir) -> None:
        self.flame_dir, self._faces = flame_dir, None

    def __call__(self) -> np.ndarray:
        if self._faces is None:
            from ..flame import load_flame_assets

            self._faces = load_flame_assets(self.flame_dir).faces.astype(np.int32)
        return self._faces


def _mapped(label: str, mesh: Any, faces: _FlameFaces) -> Callable[[], Mesh]:
    def load() -> Mesh:
        if isinstance(mesh, tuple) and len(mesh) in (2, 3):
            return check_mesh(label, *mesh)
        vertices = np.asarray(mesh)
        if vertices.shape != (catalogue.SVFR_FLAME_VERTICES, 3):
            raise SubmissionError(
                f"{label}: a bare vertices array must be FLAME's ({catalogue.SVFR_FLAME_VERTICES}, 3), not "
                f"{vertices.shape}; give (vertices, faces[, landmarks]) for other meshes."
            )
        return check_mesh(label, vertices, faces())

    return load


def _folder_sources(folder: Path, tasks: tuple[str, ...]) -> list[MeshSource]:
    """Meshes under a folder mirroring ``svfr/`` (or its parent holding ``svfr/``)."""
    if (folder / catalogue.SVFR).is_dir():
        folder = refuse_link(folder / catalogue.SVFR)
    if not folder.is_dir():
        raise SubmissionError(f"The predictions folder {folder} does not exist or is not a folder.")
    sources = []
    for participant_dir in (p for p in visible_entries(folder) if p.is_dir()):
        for key_dir in (p for p in visible_entries(participant_dir) if p.is_dir()):
            sources += _key_sources(participant_dir, key_dir, tasks)
    return sources


def _key_sources(participant_dir: Path, key_dir: Path, tasks: tuple[str, ...]) -> Iterator[MeshSource]:
    files = {path.name: path for path in visible_entries(key_dir) if path.is_file()}
    meshes = {task: [files[name] for name in (f"mesh_{task}{s}" for s in MESH_SUFFIXES) if name in files]
              for task in tasks}
    if not any(meshes.values()):
        return
    participant, key = _folder_key(participant_dir, key_dir)
    for task, files in meshes.items():
        if len(files) > 1:
            raise SubmissionError(f"{key_dir} holds both {files[0].name} and {files[1].name}; keep one.")
        if files:
            label = f"The mesh {files[0]}"
            yield MeshSource(participant, key, task, label, _from_files(label, files[0], key_dir / f"landmarks_{task}.npy"))


def _folder_key(participant_dir: Path, key_dir: Path) -> SvfrKey:
    """The catalogue key a prediction folder names, refusing unknown keys and misspelt timesteps."""
    name = participant_dir.name
    participant = int(name) if name.isdigit() else None
    if participant not in catalogue.SVFR_PARTICIPANTS or name != f"{participant:03d}":
        raise SubmissionError(f"The folder {participant_dir} is not an SVFR participant ({{participant:03d}}, e.g. 017).")
    key = catalogue.parse_svfr_folder(key_dir.name)
    if key is None or key not in catalogue.svfr_image_keys()[participant]:
        raise SubmissionError(
            f"The folder {key_dir} names no SVFR image of participant {participant} "
            "({sequence}_{timestep}_{serial} of the benchmark's image keys)."
        )
    if key_dir.name not in (catalogue.svfr_folder(key), catalogue.svfr_submission_folder(key)):
        raise SubmissionError(
            f"The folder {key_dir} writes timestep {key.timestep} with the wrong padding; name it "
            f"{catalogue.svfr_folder(key)} (as fetched) or {catalogue.svfr_submission_folder(key)} (as in the zip)."
        )
    return participant, key


def _from_files(label: str, mesh_file: Path, landmarks_file: Path) -> Callable[[], Mesh]:
    def load() -> Mesh:
        try:
            vertices, faces = read_mesh_bytes(_read(mesh_file, MAX_MESH_FILE_BYTES), mesh_file.suffix)
        except MeshFileError as error:
            raise SubmissionError(f"{label} cannot be read: {error}.") from error
        landmarks = None
        if landmarks_file.is_file():
            landmarks = read_landmarks(_read(landmarks_file, MAX_LANDMARKS_BYTES), f"The landmarks {landmarks_file}")
            check_real(landmarks, f"The landmarks {landmarks_file}")
        return check_mesh(label, vertices, faces, landmarks)

    return load


def _read(path: Path, limit: int) -> bytes:
    if refuse_link(path).stat().st_size > limit:
        raise SubmissionError(f"{path} is {path.stat().st_size} bytes, more than the {limit} such a file may have.")
    return path.read_bytes()


def read_landmarks(data: bytes, label: str) -> np.ndarray:
    """An ``.npy`` array from bytes, its header checked against them before anything is allocated and without
    pickles, or a SubmissionError naming ``label``."""
    import io

    try:
        return read_npy(io.BytesIO(data), len(data), "it").copy()  # writable, as np.load gives it
    except NpyError as error:
        raise SubmissionError(f"{label} is not a readable .npy array ({error}).") from None
