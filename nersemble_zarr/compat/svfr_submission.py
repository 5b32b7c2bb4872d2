"""The official SVFR submission writer and reader (``nersemble_benchmark.data.submission_data``), atomic and offline.

``add_posed_mesh`` / ``add_neutral_mesh`` check each mesh as the official writer does (and as the server reads
it: NaN, faces out of range, FLAME-sized meshes trimesh would merge) and store it as binary PLY, the way
``export-submission`` does. The zip is written under a hidden temporary name beside the target, validated and
moved onto it only by ``close()`` (or leaving ``with`` without an error): an error, or a writer never closed,
leaves any older zip untouched. The reader validates without trimesh or the network.
"""

from __future__ import annotations

import os
import weakref
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .. import catalogue
from ..atomic import temporary_path
from ..errors import SubmissionError
from ..outputs import check_output_file
from .submission import ClosedOnSuccess, zip_output
from ..submission.meshfile import MeshFileError, read_ply, server_mesh_size
from ..submission.svfr_predictions import (
    MAX_LANDMARKS_BYTES, MAX_MESH_FILE_BYTES, all_svfr_keys, check_mesh, parse_key, read_landmarks,
)
from ..submission.svfr_validator import read_capped, validate_svfr_submission
from ..submission.svfr_writer import write_mesh_entries
from ..submission.zipsafety import open_zip


def _discard(archive: zipfile.ZipFile, partial: Path) -> None:
    """Close and remove the temporary zip; the target zip is never touched."""
    archive.close()
    partial.unlink(missing_ok=True)


class SVFRSubmissionDataWriter(ClosedOnSuccess):
    """Packs posed and/or neutral meshes into an SVFR submission zip; see the module docstring for what differs."""

    def __init__(self, zip_path: str | os.PathLike) -> None:
        self._zip_path = zip_output(zip_path)
        self._partial = temporary_path(self._zip_path)
        self._zipf = zipfile.ZipFile(self._partial, "x", compression=zipfile.ZIP_STORED, allowZip64=True)
        self._entries: set[str] = set()
        self._finalizer = weakref.finalize(self, _discard, self._zipf, self._partial)

    def add_posed_mesh(self, participant_id: int, sequence_name: str, timestep: int, serial: str, mesh: Any,
                       now_landmarks: Optional[np.ndarray] = None) -> None:
        """Add the posed mesh of one image; ``now_landmarks`` (7, 3) are needed unless it has FLAME topology."""
        self._add_mesh(participant_id, sequence_name, timestep, serial, mesh, "posed", now_landmarks)

    def add_neutral_mesh(self, participant_id: int, sequence_name: str, timestep: int, serial: str, mesh: Any,
                         now_landmarks: Optional[np.ndarray] = None) -> None:
        """Add the neutral mesh of one image; ``now_landmarks`` (7, 3) are needed unless it has FLAME topology."""
        self._add_mesh(participant_id, sequence_name, timestep, serial, mesh, "neutral", now_landmarks)

    def close(self) -> None:
        """Validate the zip and move it onto its name; on an error nothing replaces the old zip."""
        if not self._finalizer.alive:
            return
        try:
            self._zipf.close()
            if not self._entries:
                raise SubmissionError(f"No mesh was added to {self._zip_path}; nothing was written.")
            validate_svfr_submission(self._partial, partial=True).raise_if_invalid()
            os.replace(self._partial, check_output_file(self._zip_path, "submission zip"))
        finally:
            self._finalizer()

    def _add_mesh(self, participant_id: int, sequence_name: str, timestep: int, serial: str, mesh: Any, task: str,
                  now_landmarks: Optional[np.ndarray]) -> None:
        if not self._finalizer.alive:
            raise SubmissionError(f"The writer of {self._zip_path} is closed; open a new one.")
        participant, key = parse_key((participant_id, sequence_name, timestep, serial))
        entry = catalogue.svfr_mesh_entry(participant, key, task)
        if entry in self._entries:
            raise SubmissionError(f"{entry} was already added to {self._zip_path}; add each mesh once.")
        label = f"The {task} mesh of {participant:03d}/{catalogue.svfr_folder(key)}"
        checked = check_mesh(label, *_mesh_arrays(mesh, label), now_landmarks)
        write_mesh_entries(self._zipf, participant, key, task, checked)
        self._entries.add(entry)


def _mesh_arrays(mesh: Any, label: str) -> Tuple[Any, Any]:
    """Vertices and faces of a trimesh-like mesh (``.vertices``, ``.faces``) or a ``(vertices, faces)`` pair."""
    if hasattr(mesh, "vertices") and hasattr(mesh, "faces"):
        return mesh.vertices, mesh.faces
    if isinstance(mesh, tuple) and len(mesh) == 2:
        return mesh
    raise SubmissionError(
        f"{label} is a {type(mesh).__name__}; give a mesh with .vertices and .faces (a trimesh.Trimesh) "
        "or a (vertices, faces) pair.")


class SVFRSubmissionDataReader:
    """Reads and validates an SVFR submission zip, offline and without trimesh (except to return meshes)."""

    def __init__(self, zip_path: str | os.PathLike) -> None:
        self._zip_path = Path(zip_path)
        open_zip(self._zip_path).close()  # a missing or broken zip is a SubmissionError now, as the official opens it

    def load_posed_mesh(self, participant_id: int, sequence_name: str, timestep: int, serial: str):
        return self._load_mesh(participant_id, sequence_name, timestep, serial, "posed")

    def load_neutral_mesh(self, participant_id: int, sequence_name: str, timestep: int, serial: str):
        return self._load_mesh(participant_id, sequence_name, timestep, serial, "neutral")

    def load_posed_landmarks(self, participant_id: int, sequence_name: str, timestep: int, serial: str) -> np.ndarray:
        return self._load_landmarks(participant_id, sequence_name, timestep, serial, "posed")

    def load_neutral_landmarks(self, participant_id: int, sequence_name: str, timestep: int, serial: str) -> np.ndarray:
        return self._load_landmarks(participant_id, sequence_name, timestep, serial, "neutral")

    def has_posed_reconstructions(self) -> bool:
        return self._has_reconstructions("posed")

    def has_neutral_reconstructions(self) -> bool:
        return self._has_reconstructions("neutral")

    def validate_submission(self) -> Dict[str, List]:
        """The official result: per task present ``missing_{task}_meshes``, ``empty_{task}_meshes``,
        ``missing_{task}_landmarks`` and ``wrong_{task}_landmarks`` [(file, shape)]; ``unexpected_files``;
        ``missing_svfr_tasks`` when the zip holds neither task; each only when not empty. Added:
        ``unreadable_files`` [(file, reason)] for meshes or landmarks that cannot be read (the official fails)."""
        with open_zip(self._zip_path) as archive:
            files = [info.filename for info in archive.infolist() if not info.is_dir()]
            present = set(files)
            expected = {task: set() for task in catalogue.SVFR_TASKS}
            found = {task: {"meshes": [], "missing": [], "empty": [], "no_landmarks": [], "wrong": [], "unreadable": []}
                     for task in catalogue.SVFR_TASKS}
            for participant, key in all_svfr_keys():
                for task in catalogue.SVFR_TASKS:
                    mesh_entry = catalogue.svfr_mesh_entry(participant, key, task)
                    landmarks_entry = catalogue.svfr_landmarks_entry(participant, key, task)
                    expected[task] |= {mesh_entry, landmarks_entry}
                    if mesh_entry not in present:
                        found[task]["missing"].append(mesh_entry)
                        continue
                    found[task]["meshes"].append(mesh_entry)
                    for kind, value in _mesh_findings(archive, present, mesh_entry, landmarks_entry):
                        found[task][kind].append(value)
        has = {task: bool(found[task]["meshes"]) for task in catalogue.SVFR_TASKS}
        issues: Dict[str, List] = {}
        for task in catalogue.SVFR_TASKS:
            if not has[task]:
                continue
            lists = found[task]
            for name, values in ((f"missing_{task}_meshes", lists["missing"]), (f"empty_{task}_meshes", lists["empty"]),
                                 (f"missing_{task}_landmarks", lists["no_landmarks"]),
                                 (f"wrong_{task}_landmarks", lists["wrong"])):
                if values:
                    issues[name] = values
        unexpected = [name for name in files if _unexpected(name, has, expected)]
        if unexpected:
            issues["unexpected_files"] = unexpected
        if not any(has.values()):
            issues["missing_svfr_tasks"] = list(catalogue.SVFR_TASKS)
        unreadable = [value for task in catalogue.SVFR_TASKS for value in found[task]["unreadable"]]
        if unreadable:
            issues["unreadable_files"] = unreadable
        return issues

    def report(self):
        """This project's full validation (every mesh parsed, NaN, face ranges, zip safety) as a ValidationReport."""
        return validate_svfr_submission(self._zip_path, partial=True)

    # ---------------------------------------------------------------- reading
    def _load_mesh(self, participant_id: int, sequence_name: str, timestep: int, serial: str, task: str):
        """The mesh as the server builds it: ``trimesh.Trimesh`` of the PLY's vertices and faces."""
        import trimesh

        entry = catalogue.svfr_mesh_entry(*parse_key((participant_id, sequence_name, timestep, serial)), task)
        with open_zip(self._zip_path) as archive:
            vertices, faces = _read_mesh(archive, entry)
        return trimesh.Trimesh(vertices=vertices, faces=faces)

    def _load_landmarks(self, participant_id: int, sequence_name: str, timestep: int, serial: str,
                        task: str) -> np.ndarray:
        entry = catalogue.svfr_landmarks_entry(*parse_key((participant_id, sequence_name, timestep, serial)), task)
        with open_zip(self._zip_path) as archive:
            return _read_landmarks(archive, entry)

    def _has_reconstructions(self, task: str) -> bool:
        with open_zip(self._zip_path) as archive:
            names = set(archive.namelist())
        return any(catalogue.svfr_mesh_entry(p, k, task) in names for p, k in all_svfr_keys())


def _mesh_findings(archive: zipfile.ZipFile, present: set, mesh_entry: str, landmarks_entry: str):
    """(kind, value) of each official finding on one mesh present in the zip: ``empty``, ``no_landmarks``,
    ``wrong`` (landmarks not (7, 3)), or ``unreadable`` (a file that cannot be read, with why)."""
    try:
        vertices, faces = _read_mesh(archive, mesh_entry)
    except SubmissionError as error:
        yield "unreadable", (mesh_entry, str(error))
        return
    n_vertices, n_faces = server_mesh_size(vertices, faces)  # as the official's trimesh builds the mesh
    if n_vertices == 0 or n_faces == 0:
        yield "empty", mesh_entry
    if n_vertices == catalogue.SVFR_FLAME_VERTICES:
        return
    if landmarks_entry not in present:
        yield "no_landmarks", landmarks_entry
        return
    try:
        landmarks = _read_landmarks(archive, landmarks_entry)
    except SubmissionError as error:
        yield "unreadable", (landmarks_entry, str(error))
        return
    if landmarks.shape != (catalogue.SVFR_N_LANDMARKS, 3):
        yield "wrong", (landmarks_entry, landmarks.shape)


def _entry_bytes(archive: zipfile.ZipFile, entry: str, limit: int) -> bytes:
    try:
        info = archive.getinfo(entry)
    except KeyError:
        raise SubmissionError(f"The submission has no {entry}.") from None
    data, problem = read_capped(archive, info, limit)
    if problem:
        raise SubmissionError(problem)
    return data


def _read_mesh(archive: zipfile.ZipFile, entry: str) -> Tuple[np.ndarray, np.ndarray]:
    """Vertices and faces of a PLY entry, or a SubmissionError naming it (unreadable, faces out of range)."""
    try:
        vertices, faces = read_ply(_entry_bytes(archive, entry, MAX_MESH_FILE_BYTES))
    except MeshFileError as error:
        raise SubmissionError(f"{entry} is not a readable PLY mesh: {error}.") from error
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise SubmissionError(
            f"{entry} has face indices {faces.min()}..{faces.max()}, outside its {len(vertices)} vertices.")
    return vertices, faces


def _read_landmarks(archive: zipfile.ZipFile, entry: str) -> np.ndarray:
    return read_landmarks(_entry_bytes(archive, entry, MAX_LANDMARKS_BYTES), entry)


def _unexpected(name: str, has: Dict[str, bool], expected: Dict[str, set]) -> bool:
    """The official rule: a file outside the tasks present (outside both when neither is), listed once."""
    tasks = [task for task in catalogue.SVFR_TASKS if has[task]]
    if tasks:
        return all(name not in expected[task] for task in tasks)
    return any(name not in expected[task] for task in catalogue.SVFR_TASKS)

