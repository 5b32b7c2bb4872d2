"""Write a benchmark submission zip from predictions, streaming frames and never exposing a partial zip.

Steps: check the predictions against the spec (metadata only), encode every video in parallel into its own
mp4 in a hidden temp folder beside the output, store them into a zip under a hidden temporary name in the
output's folder, validate that zip (its videos decoded in parallel too), and only then move it onto the
output name.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from ..errors import SubmissionError
from ..outputs import check_output_file, claim_output_file
from ..progress import LockedProgress, Progress
from ..video import SUBMISSION_CRF
from .encode import EncodeSettings, encode_videos
from .expected import FrameCounts, expected_submission
from .predictions import collect_predictions
from .validator import ValidationReport, validate_submission


def export_submission(
    predictions: Any,
    output: str | os.PathLike,
    benchmark: str,
    *,
    root: str | os.PathLike | None = None,
    store=None,
    frame_counts: FrameCounts | None = None,
    resolution: tuple[int, int] | None = None,
    partial: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    client=None,
    crf: int = SUBMISSION_CRF,
    progress: Progress | None = None,
) -> ValidationReport:
    """Encode ``predictions`` into the submission zip ``output`` for ``benchmark`` and return its validation.

    ``predictions``: a store path or DataTree, a mapping (participant, sequence, serial) -> frames, or a
    folder of images (see ``predictions``). Frame counts come from ``root``, ``store`` or ``frame_counts``
    (NVS: the catalogue by default); ``resolution`` = (width, height) overrides the frame size. Videos are
    encoded on ``workers`` threads, or on a dask.distributed ``client`` whose workers can write the
    output's folder. ``progress`` is told the number of frames (``set_total``) and receives encoded frame counts. With ``partial`` a subset of
    the videos is enough. An existing ``output`` is only replaced with ``overwrite``, and only by a zip
    that validated; on any error nothing new remains beside it.
    """
    spec = expected_submission(
        benchmark, root=root, store=store, frame_counts=frame_counts, resolution=resolution, partial=partial
    )
    output = check_zip_output(Path(output), overwrite, inputs=path_inputs(predictions, root, store))
    sources = collect_predictions(predictions, spec, partial=partial)
    settings = EncodeSettings(spec.width, spec.height, spec.fps, crf)
    with tempfile.TemporaryDirectory(
        dir=output.parent, prefix=f".{output.name}.", suffix=".videos", ignore_cleanup_errors=True
    ) as folder:
        jobs = [(source, Path(folder) / f"{index:03d}.mp4") for index, source in enumerate(sources)]
        counter = LockedProgress(progress)
        counter.set_total(sum(s.n_frames for s in sources))
        encode_videos(jobs, settings, workers=workers, client=client, progress=counter)
        partial_zip = output.with_name(f".{output.name}.{secrets.token_hex(4)}.part")
        try:
            with zipfile.ZipFile(partial_zip, "x", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                for source, path in jobs:
                    archive.write(path, arcname=source.video)
                    path.unlink()  # keep at most one copy of each video on disk
            report = validate_submission(
                partial_zip, spec=spec, partial=partial, scratch_dir=folder, workers=workers or os.cpu_count() or 1
            )
            report = dataclasses.replace(report, path=output)
            report.raise_if_invalid()
            os.replace(partial_zip, check_output_file(output))
        finally:
            partial_zip.unlink(missing_ok=True)
    return report


def path_inputs(*inputs: Any) -> tuple[str | os.PathLike, ...]:
    """The inputs among ``inputs`` given as paths (a store or predictions may also be an object in memory)."""
    return tuple(value for value in inputs if isinstance(value, (str, os.PathLike)))


def check_zip_output(output: Path, overwrite: bool, inputs: tuple = ()) -> Path:
    """The absolute output path of a submission zip under the rule of every file output (``claim_output_file``):
    no folder, FIFO or link, an existing folder, no file of ``inputs``, an existing file only with ``overwrite``."""
    return claim_output_file(output, overwrite=overwrite, what="output", inputs=inputs).absolute()
