"""Write an SVFR submission zip of binary PLY meshes (and NoW landmarks), never exposing a partial zip.

Steps: find and check the predictions (keys, folder names, completeness), read and check each mesh while
storing it into a zip under a hidden temporary name in the output's folder, validate that zip as the server
will, and only then move it onto the output name.
"""

from __future__ import annotations

import dataclasses
import io
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import catalogue
from ..flame.mesh_io import ply_bytes
from ..outputs import check_output_file
from .svfr_predictions import collect_svfr_predictions
from .svfr_validator import validate_svfr_submission
from .validator import ValidationReport
from .writer import check_zip_output


def export_svfr_submission(
    predictions: Any,
    output: str | os.PathLike,
    *,
    tasks: tuple[str, ...] | None = None,
    partial: bool = False,
    overwrite: bool = False,
    flame_dir: str | os.PathLike | None = None,
    device: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> ValidationReport:
    """Write the SVFR submission zip ``output`` from ``predictions`` and return its validation.

    ``predictions``: a folder mirroring the fetched ``svfr`` folder, a mapping ``task -> {key: mesh}`` or
    ``SvfrFlamePredictions`` (see ``svfr_predictions``); ``tasks`` narrows the tasks taken. ``flame_dir``
    locates FLAME (for FLAME parameters, or bare vertex arrays that need its faces). Without ``partial``
    each task written covers all 391 images. ``progress(done, total)`` counts meshes written. An existing
    ``output`` is only replaced with ``overwrite``, and only by a zip that validated.
    """
    output = check_zip_output(Path(output), overwrite)
    sources = collect_svfr_predictions(predictions, tasks=tasks, partial=partial, flame_dir=flame_dir, device=device)
    partial_zip = output.with_name(f".{output.name}.{secrets.token_hex(4)}.part")
    try:
        with zipfile.ZipFile(partial_zip, "x", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for done, source in enumerate(sources, 1):
                mesh = source.load()
                archive.writestr(_entry(source.entry), ply_bytes(mesh.vertices, mesh.faces))
                if mesh.landmarks is not None:
                    buffer = io.BytesIO()
                    np.save(buffer, mesh.landmarks, allow_pickle=False)
                    landmarks = catalogue.svfr_landmarks_entry(source.participant, source.key, source.task)
                    archive.writestr(_entry(landmarks), buffer.getvalue())
                if progress is not None:
                    progress(done, len(sources))
        report = validate_svfr_submission(partial_zip, partial=partial)
        report = dataclasses.replace(report, path=output)
        report.raise_if_invalid()
        os.replace(partial_zip, check_output_file(output))
    finally:
        partial_zip.unlink(missing_ok=True)
    return report


def _entry(name: str) -> zipfile.ZipInfo:
    """A stored entry with a fixed timestamp and plain file permissions."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    return info
