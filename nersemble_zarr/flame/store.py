"""Write FLAME meshes into the sequence groups of a store, resumably, and read one mesh back.

Each mono sequence group that has FLAME tracking coordinates gets ``vertices`` (timestep, vertex, xyz),
``landmarks`` (timestep, landmark, xyz) when the embeddings exist, and ``faces`` (face, corner).
Vertices are written one region of whole timestep chunks at a time; unwritten chunks hold NaN (the
fill value), which is how a rerun finds what is left. ``attrs["vertices_complete"]`` is set only
after every chunk of a sequence is written, and complete sequences are skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import zarr

from .. import schema, storage
from ..catalogue import check_safe_name
from ..errors import CatalogueError, StoreError, shown, write_failure
from ..progress import Progress
from ..storage import refresh_consolidated_metadata
from .batching import default_batch_size, merge_consecutive, plan_timestep_batches
from .lbs import FlameModel
from .sequence import flame_parameters

BENCHMARK = "mono_flame_avatar"
COMPLETE_ATTR = schema.VERTICES_COMPLETE_ATTR
MODEL_ATTR = schema.VERTICES_MODEL_ATTR
CHUNK_TIMESTEPS = 32


@dataclass(frozen=True)
class SequenceGroup:
    """One sequence group of the store that has FLAME tracking."""

    participant: int
    sequence: str
    n_timesteps: int
    complete: bool
    model: str | None  # description of the model that made the stored meshes, if any

    @property
    def path(self) -> str:
        """The group path inside the store, e.g. ``mono_flame_avatar/393/EXP-1-head``."""
        return schema.sequence_group(BENCHMARK, self.participant, self.sequence)


def find_flame_sequences(
    store: str | os.PathLike,
    participants: Iterable[int] | None = None,
    sequences: Iterable[str] | None = None,
) -> list[SequenceGroup]:
    """The sequence groups with FLAME tracking, optionally only those of some participants / sequences."""
    root = _open_root(store)
    participants = None if participants is None else [int(p) for p in participants]
    sequences = None if sequences is None else list(sequences)
    found = []
    for _, participant, sequence in storage.select_sequences(
        store, benchmark=BENCHMARK, participants=participants, sequences=sequences
    ):
        group = root[schema.sequence_group(BENCHMARK, participant, sequence)]
        if "expression" not in group:
            continue
        found.append(SequenceGroup(
            participant=participant, sequence=sequence,
            n_timesteps=group["expression"].shape[0], complete=bool(group.attrs.get(COMPLETE_ATTR, False)),
            model=group.attrs.get(MODEL_ATTR),
        ))
    _check_requested(store, found, participants, sequences)
    return found


def split_by_state(
    targets: list[SequenceGroup], model: FlameModel, overwrite: bool = False
) -> tuple[list[SequenceGroup], list[SequenceGroup]]:
    """The sequences to write, and the complete ones that are kept although another model made them."""
    todo = [target for target in targets if overwrite or not target.complete]
    other_model = [t for t in targets if t not in todo and t.model != model.assets.description]
    return todo, other_model


def write_sequence_meshes(
    store: str | os.PathLike,
    target: SequenceGroup,
    model: FlameModel,
    *,
    batch_size: int | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> bool:
    """Evaluate and store the meshes of one sequence; False when it was already complete (and kept).

    Chunks whose vertices are already written (not NaN, the fill value) are kept, so an interrupted
    run resumes where it stopped, unless they were made with another model: then it starts over.
    ``progress`` is called with the number of timesteps written (or found already written) so far.
    """
    try:
        return _write_meshes(store, target, model, batch_size, overwrite, progress)
    except OSError as error:  # a full disk or a file size limit: the flagged chunks written so far stay valid
        raise StoreError(write_failure(f"the meshes of {target.path} into {store}", error)) from error


def _write_meshes(store: str | os.PathLike, target: SequenceGroup, model: FlameModel, batch_size: int | None,
                  overwrite: bool, progress: Progress | None) -> bool:
    group = storage.open_group(store, target.path, mode="r+")
    if not storage.is_skeleton_complete(group):
        raise StoreError(f"The conversion of {target.path} in {store} is incomplete, so its FLAME tracking may be "
                         "too; finish it with `nersemble-zarr convert`, then run meshes again.")
    if group.attrs.get(COMPLETE_ATTR) and not overwrite:
        return False
    restart = overwrite or group.attrs.get(MODEL_ATTR, model.assets.description) != model.assets.description
    ds = storage.open_dataset(store, target.path, dask=False)
    params = flame_parameters(ds)
    outputs = {schema.VERTICES: (schema.VERTEX, model.assets.v_template.shape[0])}
    if model.n_landmarks:
        outputs[schema.LANDMARKS] = (schema.LANDMARK, model.n_landmarks)
    group.attrs.update({COMPLETE_ATTR: False, MODEL_ATTR: model.assets.description})
    arrays = {
        name: _mesh_array(group, name, (params.n_timesteps, size, 3), (schema.TIMESTEP, dim, schema.XYZ), restart)
        for name, (dim, size) in outputs.items()
    }
    group.create_array(
        schema.FACES, data=model.faces, dimension_names=(schema.FACE, schema.CORNER), overwrite=True)
    chunks = plan_timestep_batches(params.n_timesteps, CHUNK_TIMESTEPS)
    vertices = arrays[schema.VERTICES]
    pending = chunks if vertices.nchunks_initialized == 0 else [
        chunk for chunk in chunks if np.isnan(vertices[chunk.start, 0, 0])]
    if progress is not None:
        progress(params.n_timesteps - sum(chunk.stop - chunk.start for chunk in pending))
    identity = model.identity(params.shape, params.scale)
    for region in merge_consecutive(pending, batch_size or default_batch_size(model.device)):
        meshes = model.evaluate(
            params.take(region), identity=identity, batch_size=batch_size, landmarks=model.n_landmarks > 0)
        if schema.LANDMARKS in arrays:
            arrays[schema.LANDMARKS][region] = meshes.landmarks
        arrays[schema.VERTICES][region] = meshes.vertices  # written last: its chunks mark progress
        if progress is not None:
            progress(region.stop - region.start)
    group.attrs[COMPLETE_ATTR] = True
    refresh_consolidated_metadata(store)
    return True


def read_mesh(store: str | os.PathLike, participant: int, sequence: str, timestep: int,
              model_loader: Callable[[], FlameModel]) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (5023, 3) and faces of one timestep (a frame index of the ``timestep`` coordinate).

    Stored vertices are used when the sequence is complete; otherwise the model from ``model_loader``
    evaluates that timestep.
    """
    from .sequence import sequence_vertices

    _open_root(store)
    path = schema.sequence_group(BENCHMARK, participant, check_safe_name(sequence, "sequence"))
    try:
        ds = storage.open_dataset(store, path, dask=False)
    except StoreError as error:
        raise StoreError(f"{store} has no sequence group {path}; run convert for that sequence first.") from error
    timesteps = ds[schema.TIMESTEP].values
    if timestep not in timesteps:
        raise CatalogueError(f"Timestep {timestep} is not in {path} of {store}; its timesteps run from "
                         f"{timesteps.min()} to {timesteps.max()} ({len(timesteps)} frames).")
    one = ds.sel({schema.TIMESTEP: [timestep]})
    if ds.attrs.get(COMPLETE_ATTR) and schema.FACES in ds:
        return one[schema.VERTICES].values[0], ds[schema.FACES].values
    model = model_loader()
    return sequence_vertices(one, model).values[0], model.faces


def _open_root(store: str | os.PathLike) -> zarr.Group:
    storage.read_root_attrs(store)  # raises unless it is a store of ours in a format we read
    return storage.open_group(store)


def _check_requested(store, found: list[SequenceGroup], participants, sequences) -> None:
    """Raise a StoreError naming the first requested participant or sequence without FLAME tracking."""
    for participant in participants or []:
        if not any(group.participant == participant for group in found):
            raise StoreError(f"{store} has no sequence with FLAME tracking for participant {participant}.")
    for sequence in sequences or []:
        if not any(group.sequence == sequence for group in found):
            raise StoreError(f"{store} has no FLAME tracking for sequence {shown(sequence)}"
                             + (f" of participant(s) {', '.join(map(str, participants))}." if participants else "."))


def _mesh_array(group: zarr.Group, name: str, shape: tuple[int, ...], dims: tuple[str, ...],
                overwrite: bool) -> zarr.Array:
    """The float32 NaN-filled array ``name`` of ``group``, reused (unless ``overwrite``) when its shape fits."""
    existing = group.get(name)
    if isinstance(existing, zarr.Array) and existing.shape == shape and not overwrite:
        return existing
    return group.create_array(
        name, shape=shape, chunks=(CHUNK_TIMESTEPS, *shape[1:]), dtype="float32", fill_value=np.nan,
        dimension_names=dims, overwrite=True,
    )
