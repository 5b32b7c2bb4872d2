"""Check an SVFR submission zip as the official reader does, and more, reporting every problem at once.

The official reader reports missing and empty meshes, landmarks missing or not (7, 3) beside meshes that are
not FLAME topology, unexpected files and a zip with no task. This adds: unreadable PLY, NaN or infinite
vertices, face indices out of range, FLAME-sized meshes of which the server's trimesh keeps fewer vertices,
misnamed timesteps, and the hostile-zip rules of the video benchmarks (unsafe names, links, duplicates,
odd compression, bombs, junk before the first entry). Nothing is extracted: entries are read size-capped.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from .. import catalogue
from ..errors import SubmissionError
from ..progress import Progress, advance, set_total
from ..real_values import non_real
from .expected import listed
from .meshfile import MeshFileError, read_ply
from .svfr_predictions import (
    MAX_LANDMARKS_BYTES, MAX_MESH_FILE_BYTES, all_svfr_keys, flame_topology_problem, read_landmarks,
)
from .validator import ValidationReport
from .zipsafety import MAX_ENTRIES, copy_entry, method_problem, open_zip, prefix_problem, shown, size_problem, unsafe_entry


def svfr_entries(task: str) -> dict[str, tuple[str, str]]:
    """mesh entry -> (landmarks entry, key folder) of every image for one task."""
    return {
        catalogue.svfr_mesh_entry(p, k, task): (
            catalogue.svfr_landmarks_entry(p, k, task), f"{p:03d}/{catalogue.svfr_submission_folder(k)}"
        )
        for p, k in all_svfr_keys()
    }


def validate_svfr_submission(
    path: str | os.PathLike, *, partial: bool = False, progress: Progress | None = None
) -> ValidationReport:
    """Validate an SVFR submission zip; with ``partial`` a task may cover only some of the 391 images."""
    path = Path(path)
    try:
        archive = open_zip(path)
    except SubmissionError as error:
        return ValidationReport(path, catalogue.SVFR, (str(error),), ())
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            refusal = f"The zip holds {len(infos)} entries; an SVFR submission has at most 1564, refusing to look further."
            return ValidationReport(path, catalogue.SVFR, (refusal,), ())
        problems, meshes = _check_listing(infos, partial)
        prefix = prefix_problem(path, infos)
        if prefix is not None:
            problems.insert(0, prefix)
        names = {info.filename: info for info in infos if unsafe_entry(info) is None}
        valid = []
        set_total(progress, len(meshes))
        for info, landmarks_entry in meshes:
            found = _check_mesh(archive, info, landmarks_entry, names.get(landmarks_entry))
            problems.extend(found)
            if not found:
                valid.append(info.filename)
            advance(progress, 1)
    return ValidationReport(path, catalogue.SVFR, tuple(problems), tuple(valid))


def _check_listing(infos: list[zipfile.ZipInfo], partial: bool) -> tuple[list[str], list[tuple[zipfile.ZipInfo, str]]]:
    """Problems of the entry list and the mesh entries to open (with their landmarks entry)."""
    counts = Counter(info.filename for info in infos)
    problems = [f"Entry {shown(name)} appears {n} times." for name, n in counts.items() if n > 1]
    entries = {task: svfr_entries(task) for task in catalogue.SVFR_TASKS}
    tasks = [task for task in catalogue.SVFR_TASKS if any(name in entries[task] for name in counts)]
    if not tasks:
        problems.append(
            "The zip holds no SVFR task: neither mesh_posed.ply nor mesh_neutral.ply for any of the 391 images "
            "({participant:03d}/{sequence}_{timestep:03d}_{serial}/mesh_{task}.ply)."
        )
    allowed = {name for task in tasks for mesh, (landmarks, _) in entries[task].items() for name in (mesh, landmarks)}
    folders = {f"{p:03d}/" for p in catalogue.SVFR_PARTICIPANTS} | {
        folder + "/" for task in catalogue.SVFR_TASKS for _, folder in entries[task].values()
    }
    unexpected, misnamed, meshes = [], [], []
    for info in infos:
        reason = unsafe_entry(info) or method_problem(info)
        if reason is not None:
            problems.append(reason)
        elif info.filename in allowed:
            task = next((t for t in tasks if info.filename in entries[t]), None)
            if task is not None and counts[info.filename] == 1:
                meshes.append((info, entries[task][info.filename][0]))
        elif info.is_dir() and info.filename in folders:
            continue
        elif (hint := _padding_hint(info.filename)) is not None:
            misnamed.append(hint)
        elif counts[info.filename] == 1:
            unexpected.append(shown(info.filename))
    problems += misnamed
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected entr{'y' if len(unexpected) == 1 else 'ies'} ({listed(unexpected)}); an "
            "SVFR submission holds only {participant:03d}/{sequence}_{timestep:03d}_{serial}/mesh_{task}.ply and "
            "landmarks_{task}.npy."
        )
    for task in tasks:
        missing = [name for name in entries[task] if name not in counts]
        if missing and not partial:
            problems.append(
                f"{len(missing)} of 391 {task} meshes are missing ({listed(missing)}); a task is all 391 images or absent."
            )
    return problems, meshes


def _padding_hint(name: str) -> str | None:
    """The sentence for an entry whose folder spells a benchmark key with a timestep not padded to 3 digits."""
    parts = name.split("/")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    key = catalogue.parse_svfr_folder(parts[1])
    participant = int(parts[0])
    if key is None or key not in catalogue.svfr_image_keys().get(participant, ()):
        return None
    return (
        f"Entry {shown(name)} writes timestep {key.timestep} with the wrong padding; the zip names it "
        f"{participant:03d}/{catalogue.svfr_submission_folder(key)}/{parts[2]}."
    )


def read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> tuple[bytes | None, str | None]:
    """An entry's bytes read at most ``limit`` bytes far, or (None, why it was refused)."""
    problem = size_problem(info, limit)
    if problem is not None:
        return None, problem
    buffer = io.BytesIO()
    problem = copy_entry(archive, info, buffer, limit)
    return (None, problem) if problem else (buffer.getvalue(), None)


def _check_mesh(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, landmarks_name: str, landmarks: zipfile.ZipInfo | None
) -> list[str]:
    """Problems of one mesh entry and its landmarks, as the server reads them."""
    name = info.filename
    data, problem = read_capped(archive, info, MAX_MESH_FILE_BYTES)
    if problem:
        return [problem]
    try:
        vertices, faces = read_ply(data)
    except MeshFileError as error:
        return [f"{name} is not a readable PLY mesh: {error}."]
    problems = []
    if not len(vertices) or not len(faces):
        problems.append(f"{name} is empty ({len(vertices)} vertices, {len(faces)} faces).")
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices)).any(axis=1).sum())
        problems.append(f"{name} has {bad} vertices with NaN or infinite coordinates.")
    faces_in_range = bool(len(faces)) and faces.min() >= 0 and faces.max() < len(vertices)
    if len(faces) and not faces_in_range:
        problems.append(f"{name} has face indices {faces.min()}..{faces.max()}, outside its {len(vertices)} vertices.")
    if landmarks is None and (faces_in_range or len(vertices) != catalogue.SVFR_FLAME_VERTICES):
        topology = flame_topology_problem(vertices, faces)
        if topology is not None:
            problems.append(f"{name} has no {landmarks_name}: {topology}")
    if landmarks is not None:
        problems += _check_landmarks(archive, landmarks)
    return problems


def _check_landmarks(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> list[str]:
    data, problem = read_capped(archive, info, MAX_LANDMARKS_BYTES)
    if problem:
        return [problem]
    try:
        array = read_landmarks(data, info.filename)
    except SubmissionError as error:
        return [str(error)]
    expected = (catalogue.SVFR_N_LANDMARKS, 3)
    if (problem := non_real(array.dtype)) is not None:
        return [f"{info.filename} has {problem}."]
    if array.shape != expected:
        return [f"{info.filename} has shape {array.shape} ({array.dtype}); expected {expected} numbers."]
    if not np.isfinite(array.astype(np.float64)).all():
        return [f"{info.filename} holds NaN or infinite landmarks."]
    return []
