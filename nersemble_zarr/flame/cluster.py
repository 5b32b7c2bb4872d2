"""Mesh many sequences on a dask.distributed cluster: one task per sequence, the model loaded per worker."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

from ..parallel import run_tasks
from ..progress import Progress
from ..storage import refresh_consolidated_metadata
from .lbs import FlameModel
from .store import SequenceGroup, write_sequence_meshes


@dataclass(frozen=True)
class MeshJob:
    """What a worker needs to mesh one sequence: only paths and settings, nothing open."""

    store: str
    target: SequenceGroup
    flame_dir: str | None
    device: str
    batch_size: int | None
    overwrite: bool


@functools.lru_cache(maxsize=2)
def _worker_model(flame_dir: str | None, device: str) -> FlameModel:
    return FlameModel.load(flame_dir, device)


def _run_job(job: MeshJob) -> bool:
    model = _worker_model(job.flame_dir, job.device)
    return write_sequence_meshes(job.store, job.target, model, batch_size=job.batch_size, overwrite=job.overwrite)


def write_meshes_on_cluster(
    store: str | os.PathLike,
    targets: list[SequenceGroup],
    client: Any,
    *,
    flame_dir: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> int:
    """Mesh ``targets`` as one task each on ``client``'s workers (which must see ``store`` and
    ``flame_dir``); return how many sequences were written. ``progress(1)`` runs as each one finishes."""
    jobs = [
        MeshJob(os.fspath(store), target, None if flame_dir is None else os.fspath(flame_dir), device, batch_size,
                overwrite)
        for target in targets
    ]
    written = sum(run_tasks(_run_job, jobs, client=client, progress=progress))
    refresh_consolidated_metadata(store)  # workers refreshed it concurrently; settle on the final state
    return written
