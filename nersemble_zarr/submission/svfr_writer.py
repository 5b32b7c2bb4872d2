"""Write an SVFR submission zip of binary PLY meshes (and NoW landmarks), never exposing a partial zip.

Steps: find and check the predictions (keys, folder names, completeness), read and check each mesh while
storing it into a zip under a hidden temporary name in the output's folder, validate that zip as the server
will, and only then move it onto the output name.
"""

from __future__ import annotations

import dataclasses
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import catalogue
from ..atomic import atomic_path
from ..catalogue import ImageKey
from ..flame.mesh_io import ply_bytes
from ..progress import Progress, advance, set_total
from .svfr_predictions import Mesh, collect_svfr_predictions
from .svfr_validator import validate_svfr_submission
from .validator import ValidationReport
from .writer import check_zip_output, path_inputs


def export_svfr_submission(
    predictions: Any,
    output: str | os.PathLike,
    *,
    tasks: tuple[str, ...] | None = None,
    partial: bool = False,
    overwrite: bool = False,
    flame_dir: str | os.PathLike | None = None,
    device: str = "auto",
    progress: Progress | None = None,
) -> ValidationReport:
    """Write the SVFR submission zip ``output`` from ``predictions`` and return its validation.

    ``predictions``: a folder mirroring the fetched ``svfr`` folder, a mapping ``task -> {key: mesh}`` or
    ``SvfrFlamePredictions`` (see ``svfr_predictions``); ``tasks`` narrows the tasks taken. ``flame_dir``
    locates FLAME (for FLAME parameters, or bare vertex arrays that need its faces). Without ``partial``
    each task written covers all 391 images. ``progress`` is told the number of meshes and called as each is written. An existing
    ``output`` is only replaced with ``overwrite``, and only by a zip that validated.
    """
    output = check_zip_output(Path(output), overwrite, inputs=path_inputs(predictions))
    sources = collect_svfr_predictions(predictions, tasks=tasks, partial=partial, flame_dir=flame_dir, device=device)
    set_total(progress, len(sources))
    with atomic_path(output) as partial_zip:
        with zipfile.ZipFile(partial_zip, "x", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for source in sources:
                write_mesh_entries(archive, source.participant, source.key, source.task, source.load())
                advance(progress, 1)
        report = dataclasses.replace(validate_svfr_submission(partial_zip, partial=partial), path=output)
        report.raise_if_invalid()  # an invalid zip never replaces ``output``
    return report


def write_mesh_entries(archive: zipfile.ZipFile, participant: int, key: ImageKey, task: str, mesh: Mesh) -> None:
    """Store one checked mesh (binary PLY) and its landmarks (.npy, when it has them) under their zip names."""
    archive.writestr(_entry(catalogue.svfr_mesh_entry(participant, key, task)), ply_bytes(mesh.vertices, mesh.faces))
    if mesh.landmarks is not None:
        buffer = io.BytesIO()
        np.save(buffer, mesh.landmarks, allow_pickle=False)
        archive.writestr(_entry(catalogue.svfr_landmarks_entry(participant, key, task)), buffer.getvalue())


def _entry(name: str) -> zipfile.ZipInfo:
    """A stored entry with a fixed timestamp and plain file permissions."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    return info
