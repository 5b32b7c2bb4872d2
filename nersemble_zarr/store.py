"""Open the converted store and the selections people make most: a sequence, its cameras, one frame.

This is the user-facing API; ``nersemble_zarr.storage`` is the store layer the library itself goes through.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import catalogue, schema, storage
from .chunk_reader import stored_frames
from .colour import correct_colour, stored_colour_correction
from .errors import CatalogueError, StoreError, shown
from .units import listed
from .storage import StoreLike, consolidate, prepare_store, read_root_attrs, sequence_keys

# Where a Dataset from `sequence` lives, kept in its encoding for `frame`.
STORE_ENCODING, GROUP_ENCODING = "nersemble_zarr_store", "nersemble_zarr_group"

__all__ = [
    "StoreLike", "consolidate", "frame", "hold_out_cameras", "open", "prepare_store", "read_root_attrs",
    "sequence", "sequence_keys", "svfr_image", "svfr_images", "train_cameras",
]


def open(store: StoreLike, *, dask: bool = True) -> xr.DataTree:  # noqa: A001 - mirrors xr.open_*
    """Open a converted store (a path or an fsspec URL such as ``s3://bucket/nersemble.zarr``) as a lazy
    xarray DataTree, reading the consolidated metadata written by ``convert``.

    With ``dask`` (the default) variables are dask arrays chunked like the store, for streaming and
    parallel work; ``dask=False`` gives xarray's own lazy arrays, which read single frames several times
    faster (random access, training loops). A store whose attributes are damaged, or that lost a chunk its
    flags say was written (a deleted shard), is a StoreError naming it, never fill values read as data.
    """
    read_root_attrs(store)
    tree = storage.open_tree(store, dask=dask)
    storage.check_groups(store, tree)
    return tree


def sequence(tree: xr.DataTree, benchmark: str, participant: int, sequence_name: str | None = None, *,
             level: int = 1) -> xr.Dataset:
    """The Dataset of one sequence; for NVS the sequence name may be left out. ``level`` s > 1 gives the sequence at
    resolution level s (``downsample``, or a dataset converted with ``--level``)."""
    if isinstance(level, bool) or not isinstance(level, int) or level < 1:
        raise StoreError(f"Resolution level {shown(level)} is invalid; expected 1 (full resolution) or a level >= 2.")
    if benchmark == schema.DATASET:  # its names are its index's, not the catalogue's
        if sequence_name is None:
            raise StoreError("A dataset participant has many sequences; name one.")
    else:
        sequence_name = _catalogue_sequence(benchmark, participant, sequence_name)
    path = schema.level_group(level, benchmark, participant, sequence_name)
    try:
        dataset = tree[path].to_dataset()
    except KeyError as error:
        levels = sorted(int(name[len(schema.LEVEL_PREFIX):]) for name in tree.children
                        if name.startswith(schema.LEVEL_PREFIX) and name[len(schema.LEVEL_PREFIX):].isdigit())
        found = [number for number in [1] + levels
                 if _has_node(tree, schema.level_group(number, benchmark, participant, sequence_name))]
        elsewhere = f" (it holds level(s) {', '.join(map(str, found))}; pass level=)" if found else ""
        raise StoreError(f"The store has no sequence {path}{elsewhere}; convert it first.") from error
    full = schema.sequence_group(benchmark, participant, sequence_name)
    # downsample's level groups carry no flag of their own: they are as complete as the sequence they mirror
    flagged = dataset.attrs if level == 1 or not _has_node(tree, full) else {**tree[full].attrs, **dataset.attrs}
    if not (flagged.get(schema.SKELETON_ATTR) or flagged.get(schema.CONVERTED_ATTR)):
        raise StoreError(f"The conversion of {path} is incomplete (a convert still running, or stopped); "
                         "finish it with `nersemble-zarr convert`.")
    # Cameras and FLAME parameters are small: load them once so selections never touch the store again.
    dataset = dataset.assign_coords({name: dataset[name].load() for name in dataset.coords})
    source = tree.encoding.get("source")
    if source is not None:  # where `frame` reads from directly
        dataset.encoding.update({STORE_ENCODING: str(source), GROUP_ENCODING: path})
        if schema.IMAGES in dataset and "://" not in str(source):  # local: read every shard index once now
            stored_frames(str(source), path, schema.IMAGES)
    return dataset


def _catalogue_sequence(benchmark: str, participant: int, sequence_name: str | None) -> str:
    """A benchmark sequence's name, checked against the catalogue (NVS: its one sequence when None)."""
    catalogue.check_participants(benchmark, [participant])
    if sequence_name is None:
        if benchmark != "nvs":
            raise StoreError("The mono_flame_avatar benchmark has many sequences per participant; name one.")
        sequence_name = catalogue.NVS_SEQUENCES[participant]
    known = catalogue.sequences(benchmark, participant)
    if sequence_name not in known:
        raise CatalogueError(
            f"Participant {participant} of {benchmark} has no sequence {shown(sequence_name)}; its sequences: "
            f"{listed(known)}."
        )
    return sequence_name


def _has_node(tree: xr.DataTree, path: str) -> bool:
    try:
        tree[path]
    except KeyError:
        return False
    return True


def train_cameras(dataset: xr.Dataset) -> xr.Dataset:
    """The cameras a method may train on."""
    return dataset.sel({schema.SERIAL: dataset[schema.SPLIT] == "train"})


def hold_out_cameras(dataset: xr.Dataset) -> xr.Dataset:
    """The benchmark's hold-out (test) cameras."""
    return dataset.sel({schema.SERIAL: dataset[schema.SPLIT] == "test"})


def frame(dataset: xr.Dataset, serial: str, timestep: int, *, colour_correct: bool = False) -> np.ndarray:
    """One RGB frame as an (H, W, 3) uint8 array; ``timestep`` is the original frame index.

    On a Dataset from :func:`sequence` the frame's chunk is read straight from the store into the array
    (``nersemble_zarr.chunk_reader``), several times faster than xarray's indexing, with or without dask.
    ``colour_correct``: corrected with the camera's matrix of the group's ``colour_correction`` coordinate
    (:func:`nersemble_zarr.colour.correct_colour`, as the official kit corrects); at a resolution level the stored
    frame is already area-averaged, so it is corrected after averaging (``docs/colour.md``).
    """
    if serial not in dataset.indexes[schema.SERIAL] or timestep not in dataset.indexes[schema.TIMESTEP]:
        raise StoreError(f"No frame for camera {shown(serial)} at timestep {timestep} in this sequence.")
    matrices = stored_colour_correction(dataset, _group_name(dataset)) if colour_correct else None
    source, group = dataset.encoding.get(STORE_ENCODING), dataset.encoding.get(GROUP_ENCODING)
    if source is None or group is None:
        _refuse_unwritten(dataset, serial, timestep)
        image = dataset[schema.IMAGES].sel({schema.SERIAL: serial, schema.TIMESTEP: timestep}).values
    else:
        frames = stored_frames(source, group, schema.IMAGES)
        if not frames.was_written(serial):  # the reader's flags are as old as the reader: the Dataset's decide
            _refuse_unwritten(dataset, serial, timestep)
        image = frames.read(serial, timestep)
    if matrices is None:
        return image
    return correct_colour(image, matrices[list(dataset.indexes[schema.SERIAL]).index(serial)])


def _group_name(dataset: xr.Dataset) -> str:
    """Which store group a Dataset was read from, for messages: e.g. ``store group level_2/nvs/388/GLASSES``."""
    group = dataset.encoding.get(GROUP_ENCODING)
    if group is None and all(key in dataset.attrs for key in (schema.BENCHMARK_ATTR, schema.PARTICIPANT_ATTR,
                                                               schema.SEQUENCE_ATTR)):
        group = schema.level_group(int(dataset.attrs.get(schema.LEVEL_ATTR, 1)), dataset.attrs[schema.BENCHMARK_ATTR],
                                   dataset.attrs[schema.PARTICIPANT_ATTR], dataset.attrs[schema.SEQUENCE_ATTR])
    return "this Dataset" if group is None else f"store group {group}"


def _refuse_unwritten(dataset: xr.Dataset, serial: str, timestep: int) -> None:
    """A StoreError when the Dataset's flags say camera ``serial``'s frames were never written (a computation
    when the flags are dask-backed, so the direct path asks only when its reader's flags say no)."""
    written = storage.written_cameras(dataset)
    if written.any() and not written[list(dataset.indexes[schema.SERIAL]).index(serial)]:
        raise StoreError(f"No frame for camera {shown(serial)} at timestep {timestep}: its frames were never written "
                         "(a camera without video, or one not converted yet; `nersemble-zarr info` lists them).")


def svfr_images(tree: xr.DataTree, participant: int) -> xr.Dataset:
    """The Dataset of one participant's SVFR images (``images (image, y, x, channel)`` with ``sequence``,
    ``timestep`` and ``serial`` along ``image``), its small coordinates loaded."""
    catalogue.check_participants(catalogue.SVFR, [participant])
    path = schema.svfr_group(participant)
    try:
        dataset = tree[path].to_dataset()
    except KeyError as error:
        raise StoreError(f"The store has no SVFR group {path}; convert it first.") from error
    return dataset.assign_coords({name: dataset[name].load() for name in dataset.coords})


def svfr_image(dataset: xr.Dataset, sequence_name: str, timestep: int, serial: str) -> np.ndarray:
    """One SVFR image as (H, W, 3 or 4) uint8 at its own size (the store pads smaller images of a participant);
    an image not yet converted is a StoreError."""
    match = (
        (dataset[schema.SVFR_SEQUENCE].values == sequence_name) & (dataset[schema.TIMESTEP].values == timestep)
        & (dataset[schema.SERIAL].values == serial)
    )
    if not match.any():
        raise StoreError(
            f"No SVFR image {shown(f'{sequence_name}_{timestep}_{serial}')} for participant "
            f"{dataset.attrs.get(schema.PARTICIPANT_ATTR)} in this store."
        )
    index = int(np.flatnonzero(match)[0])
    flag = schema.converted_flag(schema.IMAGES)
    if flag in dataset and not bool(dataset[flag][index]):
        raise StoreError(
            f"The SVFR image {shown(f'{sequence_name}_{timestep}_{serial}')} of participant "
            f"{dataset.attrs.get(schema.PARTICIPANT_ATTR)} was not converted yet; rerun convert to finish the store."
        )
    height, width = int(dataset[schema.IMAGE_HEIGHT][index]), int(dataset[schema.IMAGE_WIDTH][index])
    return dataset[schema.IMAGES][index, :height, :width].values
