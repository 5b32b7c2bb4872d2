"""Mesh every requested sequence of a store: plan what is left, then write it here or on a dask cluster."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

from .. import storage
from ..progress import Progress, describe, set_total
from .lbs import FlameModel
from .store import (
    SequenceGroup, find_flame_sequences, refresh_consolidated_metadata, split_by_state, write_sequence_meshes,
)


@dataclass(frozen=True)
class MeshPlan:
    """The sequences with FLAME tracking that were asked for, and what a run will do with them."""

    store: str
    model: FlameModel
    flame_dir: str | None
    device: str  # as requested ("auto", "cuda", ...), for the workers of a cluster
    targets: tuple[SequenceGroup, ...]
    todo: tuple[SequenceGroup, ...]  # to write (incomplete, or every one with overwrite)
    other_model: tuple[SequenceGroup, ...]  # complete but made with another model: kept
    overwrite: bool

    @property
    def n_complete(self) -> int:
        return len(self.targets) - len(self.todo)


def plan_meshes(
    store: str | os.PathLike,
    *,
    participants: Iterable[int] | None = None,
    sequences: Iterable[str] | None = None,
    flame_dir: str | os.PathLike | None = None,
    device: str = "auto",
    overwrite: bool = False,
) -> MeshPlan:
    """Load the model and find the sequences of ``store`` (all, or those of ``participants``/``sequences``)
    with FLAME tracking, split into those to write and those already complete."""
    targets = find_flame_sequences(store, participants or None, sequences or None)
    model = FlameModel.load(flame_dir, device)
    todo, other_model = split_by_state(targets, model, overwrite)
    return MeshPlan(os.fspath(store), model, None if flame_dir is None else os.fspath(flame_dir), device,
                    tuple(targets), tuple(todo), tuple(other_model), overwrite)


def complete_without_model(
    store: str | os.PathLike,
    *,
    participants: Iterable[int] | None = None,
    sequences: Iterable[str] | None = None,
) -> int | None:
    """The number of requested sequences with FLAME tracking when every one is already complete (no model is
    loaded, so a store whose meshes are done needs none), else None."""
    targets = find_flame_sequences(store, participants or None, sequences or None)
    if not targets or not all(target.complete for target in targets):
        return None
    refresh_consolidated_metadata(os.fspath(store))  # as write_meshes does when nothing is left to do
    return len(targets)


def write_meshes(
    plan: MeshPlan,
    *,
    batch_size: int | None = None,
    threads: int | None = None,
    client: Any = None,
    progress: Progress | None = None,
) -> int:
    """Write the meshes of ``plan.todo`` and return how many sequences were written.

    Here (one sequence after the other, ``threads`` CPU threads for torch; ``progress`` counts timesteps)
    or, with a dask.distributed ``client``, one task per sequence on its workers (``progress`` counts
    sequences). With nothing left to do the consolidated metadata is refreshed, in case a killed run
    left it stale after flagging its last sequence complete. The run holds the store's writer lock
    (``storage.writer_lock``): while another run writes the store this raises LockError.
    """
    with storage.writer_lock(plan.store):
        return _write_meshes(plan, batch_size, threads, client, progress)


def _write_meshes(plan: MeshPlan, batch_size: int | None, threads: int | None, client: Any,
                  progress: Progress | None) -> int:
    if not plan.todo:
        refresh_consolidated_metadata(plan.store)
        return 0
    if client is not None:
        from .cluster import write_meshes_on_cluster

        set_total(progress, len(plan.todo))
        return write_meshes_on_cluster(
            plan.store, list(plan.todo), client, flame_dir=plan.flame_dir, device=plan.device,
            batch_size=batch_size, overwrite=plan.overwrite, progress=progress,
        )
    if threads:
        import torch

        torch.set_num_threads(threads)
    set_total(progress, sum(target.n_timesteps for target in plan.todo))
    written = 0
    for target in plan.todo:
        describe(progress, target.path)
        written += write_sequence_meshes(plan.store, target, plan.model, batch_size=batch_size,
                                         overwrite=plan.overwrite, progress=progress)
    return written
