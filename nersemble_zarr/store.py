"""Open the converted store and the selections people make most: a sequence, its cameras, one frame."""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import xarray as xr
import zarr

from . import __version__, catalogue, schema
from .errors import StoreError, shown
from .locking import folder_lock

StoreLike = str | os.PathLike


def _store_path(store: StoreLike) -> str:
    return os.fspath(store)


def read_root_attrs(store: StoreLike) -> dict[str, Any]:
    """Root attributes of an existing store, after checking it is ours and of a format we can read."""
    path = _store_path(store)
    try:
        root = zarr.open_group(path, mode="r", zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError, KeyError) as error:
        raise StoreError(f"{path} is not a zarr store; convert one with `nersemble-zarr convert`.") from error
    attrs = dict(root.attrs)
    version = attrs.get(schema.FORMAT_ATTR)
    if version is None:
        raise StoreError(f"{path} is a zarr store but not one written by nersemble_zarr (no {schema.FORMAT_ATTR}).")
    if int(version) > schema.FORMAT_VERSION:
        raise StoreError(
            f"{path} has store format {version}, newer than the {schema.FORMAT_VERSION} this nersemble_zarr "
            f"{__version__} reads; upgrade nersemble_zarr."
        )
    return attrs


@contextmanager
def writer_lock(store: StoreLike, command: str) -> Iterator[None]:
    """Hold the store's advisory lock while ``command`` writes it: one writing run per store at a time.

    The lock file is ``.{name}.nersemble_zarr-lock`` beside the store (zarr warns about any other object
    inside a store). Another run holding it raises LockError naming its process. Stores on object storage
    (``s3://`` ...) are not locked: there is no file lock there, so do not write one from two runs at once.
    """
    path = _store_path(store)
    if "://" in path:
        yield
        return
    real = Path(path).resolve()
    with folder_lock(real.parent, writer_lock_name(real), f"{command} into the store {path}"):
        yield


def writer_lock_name(store: StoreLike) -> str:
    """The name of a local store's lock file, in the folder that holds the store."""
    return f".{Path(_store_path(store)).resolve().name}.nersemble_zarr-lock"


def prepare_store(store: StoreLike) -> zarr.Group:
    """Open a store for writing: create it with root attributes, or check an existing one is ours."""
    path = _store_path(store)
    is_other_folder = os.path.isdir(path) and os.listdir(path) and not os.path.exists(os.path.join(path, "zarr.json"))
    if is_other_folder or (os.path.lexists(path) and not os.path.isdir(path)):
        raise StoreError(f"{path} exists and is not a zarr store; choose another output path.")
    if os.path.exists(os.path.join(path, "zarr.json")) or not os.path.isdir(path) and _exists_remote(path):
        read_root_attrs(path)
        return zarr.open_group(path, mode="r+")
    root = zarr.open_group(path, mode="w-", zarr_format=3)
    root.attrs.update(
        {schema.FORMAT_ATTR: schema.FORMAT_VERSION, schema.CREATED_BY_ATTR: f"nersemble_zarr {__version__}", "benchmarks": []}
    )
    return root


def _exists_remote(path: str) -> bool:
    if "://" not in path:
        return False
    try:
        zarr.open_group(path, mode="r")
    except Exception:  # any failure to open means there is no store yet
        return False
    return True


def consolidate(store: StoreLike) -> None:
    """Write consolidated metadata so opening the store reads one document."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(_store_path(store))


def sequence_keys(store: StoreLike) -> list[tuple[str, int, str]]:
    """(benchmark, participant, sequence) of every full-resolution sequence group in a store, sorted."""
    root = zarr.open_group(_store_path(store), mode="r", use_consolidated=False)
    keys = []
    for benchmark in catalogue.BENCHMARKS:
        if benchmark not in root:
            continue
        for participant, participant_group in root[benchmark].groups():
            if participant.isdigit():
                keys.extend((benchmark, int(participant), name) for name, _ in participant_group.groups())
    return sorted(keys)


def open(store: StoreLike, *, dask: bool = True) -> xr.DataTree:  # noqa: A001 - mirrors xr.open_*
    """Open a converted store (a path or an fsspec URL such as ``s3://bucket/nersemble.zarr``) as a lazy
    xarray DataTree, reading the consolidated metadata written by ``convert``.

    With ``dask`` (the default) variables are dask arrays chunked like the store, for streaming and
    parallel work; ``dask=False`` gives xarray's own lazy arrays, which read single frames several times
    faster (random access, training loops).
    """
    read_root_attrs(store)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        return xr.open_datatree(_store_path(store), engine="zarr", chunks={} if dask else None, zarr_format=3)


def sequence(tree: xr.DataTree, benchmark: str, participant: int, sequence_name: str | None = None) -> xr.Dataset:
    """The Dataset of one sequence; for NVS the sequence name may be left out."""
    catalogue.check_participants(benchmark, [participant])
    if sequence_name is None:
        if benchmark != "nvs":
            raise StoreError("The mono_flame_avatar benchmark has many sequences per participant; name one.")
        sequence_name = catalogue.NVS_SEQUENCES[participant]
    path = schema.sequence_group(benchmark, participant, sequence_name)
    try:
        dataset = tree[path].to_dataset()
    except KeyError as error:
        raise StoreError(f"The store has no sequence {path}; convert it first.") from error
    # Cameras and FLAME parameters are small: load them once so selections never touch the store again.
    return dataset.assign_coords({name: dataset[name].load() for name in dataset.coords})


def train_cameras(dataset: xr.Dataset) -> xr.Dataset:
    """The cameras a method may train on."""
    return dataset.sel({schema.SERIAL: dataset[schema.SPLIT] == "train"})


def hold_out_cameras(dataset: xr.Dataset) -> xr.Dataset:
    """The benchmark's hold-out (test) cameras."""
    return dataset.sel({schema.SERIAL: dataset[schema.SPLIT] == "test"})


def frame(dataset: xr.Dataset, serial: str, timestep: int) -> np.ndarray:
    """One RGB frame as an (H, W, 3) uint8 array; ``timestep`` is the original frame index."""
    try:
        return dataset[schema.IMAGES].sel({schema.SERIAL: serial, schema.TIMESTEP: timestep}).values
    except KeyError as error:
        raise StoreError(f"No frame for camera {shown(serial)} at timestep {timestep} in this sequence.") from error
