"""The store layer: the one place that opens the zarr store (groups, arrays, xarray Datasets and DataTrees),
maps a missing or foreign store or group to one StoreError sentence, and reads and writes completion flags.

Consolidated metadata is decided here, by one rule: the library reads and writes every node through its own
metadata (``use_consolidated=False``), because the consolidated document may predate what this run wrote;
only the root opened for writing keeps the document, so that writing root attributes does not drop it (a
writer re-consolidates when it is done, ``consolidate``). ``open_tree``, the user-facing view of a converted
store, reads the consolidated document that ``convert`` writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from . import __version__, catalogue, integrity, schema, store_metadata
from .errors import CodecConfigError, MissingStore, StoreError
from .locking import folder_lock
from .outputs import kind_of

if TYPE_CHECKING:  # xarray is imported where a view is opened: reading frames or metadata does not need it
    import xarray as xr

StoreLike = str | os.PathLike
SequenceKey = tuple[str, int, str]  # (benchmark, participant, sequence)
# What opening a node raises when the store, group or array is not there or is not zarr: missing paths,
# a file where a folder should be, zarr's "node not found" and metadata errors, malformed JSON.
_NOT_A_NODE = (FileNotFoundError, NotADirectoryError, zarr.errors.BaseZarrError, ValueError, KeyError)


def store_path(store: StoreLike) -> str:
    """The store as the string zarr takes (a local path or an fsspec URL)."""
    return os.fspath(store)


def _is_remote(path: str) -> bool:
    return "://" in path


def not_a_store_sentence(store: StoreLike) -> str:
    """The sentence for a store path that holds no zarr store: missing, a file, or another kind of folder."""
    path = store_path(store)
    if not _is_remote(path) and not os.path.lexists(path):
        return f"{path} does not exist, so it is not a zarr store; convert one with `nersemble-zarr convert`."
    if not _is_remote(path) and not os.path.isdir(path):
        return f"{path} is not a zarr store: it is {kind_of(os.lstat(path).st_mode)}; pass the store's folder."
    return f"{path} is not a zarr store; convert one with `nersemble-zarr convert`."


@contextlib.contextmanager
def _mapped_errors(store: StoreLike, path: str = "", kind: str = "group") -> Iterator[None]:
    """Turn a failure to open ``path`` of ``store`` into one StoreError sentence naming both."""
    try:
        yield
    except CodecConfigError as error:  # a ValueError, but the node is there: its metadata is tampered with
        where = f"{path} of the store {store_path(store)}" if path else f"the store {store_path(store)}"
        sentence = str(error)
        raise StoreError(f"Cannot open {where}: {sentence[:1].lower()}{sentence[1:]}") from error
    except _NOT_A_NODE as error:
        if not path or not _root_exists(store):
            missing = not _is_remote(store_path(store)) and not os.path.lexists(store_path(store))
            raise (MissingStore if missing else StoreError)(not_a_store_sentence(store)) from error
        raise StoreError(
            f"The store {store_path(store)} has no readable {kind} {path}; write it first "
            "(`nersemble-zarr convert`, `downsample` or `meshes`)."
        ) from error
    except Exception as error:  # a remote filesystem's own errors: credentials, endpoint, permissions
        if not _is_remote(store_path(store)) or isinstance(error, StoreError):
            raise
        raise StoreError(remote_failure_sentence(store, error)) from error


def remote_failure_sentence(store: StoreLike, error: BaseException) -> str:
    """One sentence for a store on object storage that cannot be reached or read (no credentials, ...)."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"Cannot read the store {store_path(store)}: {type(error).__name__} ({detail}); check the credentials "
        "and endpoint of its filesystem (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)."
    )


def _root_exists(store: StoreLike) -> bool:
    try:
        _open_group(store_path(store), "", "r")
    except _NOT_A_NODE:
        return False
    return True


def _open_group(path: str, group: str, mode: str) -> zarr.Group:
    """The module's one call of zarr.open_group; see the module docstring for the consolidated rule."""
    keep_consolidated = group == "" and mode != "r"
    use_consolidated = None if keep_consolidated else False
    return zarr.open_group(path, path=group, mode=mode, zarr_format=3, use_consolidated=use_consolidated)


# ---------------------------------------------------------------- groups and arrays
def open_group(store: StoreLike, path: str = "", *, mode: str = "r") -> zarr.Group:
    """The group ``path`` ('' for the root) of the store, or a StoreError naming the store and the group."""
    with _mapped_errors(store, path):
        return _open_group(store_path(store), path, mode)


def open_array(store: StoreLike, path: str, *, mode: str = "r") -> zarr.Array:
    """The array ``path`` of the store, or a StoreError naming the store and the array."""
    with _mapped_errors(store, path, "array"):
        return zarr.open_array(store_path(store), path=path, mode=mode, zarr_format=3)


def array_exists(store: StoreLike, path: str) -> bool:
    """True when ``path`` is an array of the store (read from the array's own metadata)."""
    try:
        zarr.open_array(store_path(store), path=path, mode="r", zarr_format=3)
    except FileNotFoundError:  # zarr's ArrayNotFoundError is one
        return False
    return True


def group_exists(store: StoreLike, path: str) -> bool:
    """True when ``path`` is a group of the store (read from the group's own metadata, not consolidated)."""
    try:
        _open_group(store_path(store), path, "r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return False
    return True


def remove_group(store: StoreLike, path: str) -> None:
    """Delete the group ``path`` and everything below it, if it exists."""
    if not group_exists(store, path):
        return
    parent, _, name = path.rpartition("/")
    del open_group(store, parent, mode="r+")[name]


def _create_root(store: StoreLike) -> zarr.Group:
    """Create a new, empty store with the root attributes of this package."""
    attributes = {
        schema.FORMAT_ATTR: schema.FORMAT_VERSION,
        schema.CREATED_BY_ATTR: f"nersemble_zarr {__version__}",
        schema.BENCHMARKS_ATTR: [],
    }  # written with the group's own metadata, in one file: an interrupt leaves no root without them
    return zarr.open_group(store_path(store), mode="w-", zarr_format=3, attributes=attributes)


def _remote_store_exists(path: str) -> bool:
    """True when ``path`` is an fsspec URL at which a zarr group can be opened."""
    if not _is_remote(path):
        return False
    try:
        _open_group(path, "", "r")
    except Exception:  # any failure to open means there is no store yet
        return False
    return True


# ---------------------------------------------------------------- xarray views
def open_dataset(store: StoreLike, group: str, *, dask: bool = True) -> xr.Dataset:
    """The lazy Dataset of ``group`` (dask arrays chunked like the store, or xarray's own lazy arrays)."""
    import xarray as xr

    options: dict[str, Any] = {} if dask else {"chunks": None}
    with _mapped_errors(store, group):
        dataset = xr.open_zarr(store_path(store), group=group, consolidated=False, zarr_format=3, **options)
    store_metadata.check_group_attrs(store_path(store), group, dataset.attrs)
    integrity.check_group(store_path(store), _open_group(store_path(store), group, "r"))
    return dataset


def write_skeleton(dataset: xr.Dataset, store: StoreLike, group: str, encoding: dict) -> None:
    """Write a new group's metadata and coordinates; its (lazy) data variables are left as fill values."""
    dataset.to_zarr(  # every chunk written, even one all fill value: an absent chunk then means a lost one
        store_path(store), group=group, mode="w-", compute=False, encoding=encoding, zarr_format=3, consolidated=False,
        write_empty_chunks=True,
    )


def add_variables(dataset: xr.Dataset, store: StoreLike, group: str, encoding: dict) -> None:
    """Add new variables (lazy data left as fill values, coordinates written) to an existing group; its
    attributes are kept as they are (xarray rewrites a group's attributes, its list of coordinates included)."""
    path = store_path(store)
    dataset = dataset.copy()
    dataset.attrs = dict(_open_group(path, group, "r").attrs)
    dataset.to_zarr(
        path, group=group, mode="a", compute=False, encoding=encoding, zarr_format=3, consolidated=False,
        write_empty_chunks=True,
    )


def open_tree(store: StoreLike, *, dask: bool = True, zarr_format: int | None = 3) -> xr.DataTree:
    """The whole store as a lazy DataTree, read through its consolidated metadata when it has any."""
    import xarray as xr

    with _mapped_errors(store), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        return xr.open_datatree(store_path(store), engine="zarr", chunks={} if dask else None, zarr_format=zarr_format)


def check_groups(store: StoreLike, tree: xr.DataTree) -> None:
    """Check every group of a converted store that ``tree`` (``open_tree``) shows: its attributes (read from the
    tree, no request) and, for a local store, its flagged chunks (``integrity``); either kind of damage is a
    StoreError."""
    path = store_path(store)
    names = [node.path.strip("/") for node in tree.subtree]
    for name, node in zip(names, tree.subtree):
        store_metadata.check_group_attrs(path, name, node.attrs)
    if _is_remote(path):
        return
    with _mapped_errors(store), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        root = zarr.open_group(path, mode="r", zarr_format=3)  # its consolidated metadata: the groups of ``tree``
    for name in names:
        integrity.check_group(path, root[name] if name else root)


# ---------------------------------------------------------------- the store's own root
def read_root_attrs(store: StoreLike) -> dict[str, Any]:
    """Root attributes of an existing store, after checking it is ours and of a format we can read."""
    path = store_path(store)
    attrs = dict(open_group(path).attrs)
    version = attrs.get(schema.FORMAT_ATTR)
    if version is None:
        raise StoreError(f"{path} is a zarr store but not one written by nersemble_zarr (no {schema.FORMAT_ATTR}).")
    store_metadata.check_root_attrs(path, attrs)
    if int(version) > schema.FORMAT_VERSION:
        raise StoreError(
            f"{path} has store format {version}, newer than the {schema.FORMAT_VERSION} this nersemble_zarr "
            f"{__version__} reads; upgrade nersemble_zarr."
        )
    return attrs


def prepare_store(store: StoreLike) -> zarr.Group:
    """Open a store for writing: create it with root attributes, or check an existing one is ours."""
    path = store_path(store)
    is_other_folder = os.path.isdir(path) and os.listdir(path) and not os.path.exists(os.path.join(path, "zarr.json"))
    if is_other_folder or (os.path.lexists(path) and not os.path.isdir(path)):
        raise StoreError(f"{path} exists and is not a zarr store; choose another output path.")
    if os.path.exists(os.path.join(path, "zarr.json")) or not os.path.isdir(path) and _remote_store_exists(path):
        read_root_attrs(path)
        return open_group(path, mode="r+")
    return _create_root(path)


def record_benchmarks(store: StoreLike, benchmarks: Iterable[str]) -> None:
    """Add ``benchmarks`` to the root's list of converted benchmarks."""
    root = open_group(store, mode="r+")
    known = list(root.attrs.get(schema.BENCHMARKS_ATTR, []))
    root.attrs[schema.BENCHMARKS_ATTR] = known + [b for b in benchmarks if b not in known]


# ---------------------------------------------------------------- sequences and levels
VIDEO_SOURCES = catalogue.BENCHMARKS + (schema.DATASET,)  # the sources whose sequences are groups {source}/{p}/{s}


def sequence_keys(store: StoreLike, *, complete_only: bool = True, level: int | None = 1) -> list[SequenceKey]:
    """(benchmark, participant, sequence) of every sequence group in a store, sorted: those with a full-resolution
    group (``level`` 1, the default), those with a group at resolution ``level``, or (None) those with a group at
    any level (a dataset sequence converted straight to a level has no full-resolution group).

    A group whose skeleton is not completely written (a convert still running, or killed) is left out, with a
    warning naming it, unless ``complete_only`` is False: no reader or writer works on half a sequence. A level
    group that ``downsample`` wrote counts as complete when its full-resolution group is.
    """
    root = open_group(store)
    levels = [1] + level_numbers(root) if level is None else [int(level)]
    found: dict[SequenceKey, bool] = {}
    for number in levels:
        for key, complete in _groups_under(root, "" if number == 1 else f"{schema.LEVEL_PREFIX}{number}"):
            found[key] = found.get(key, False) or complete
    if any(number > 1 for number in levels):  # a downsampled level is as complete as the sequence it mirrors
        for key in [key for key, complete in found.items() if not complete]:
            full = schema.sequence_group(*key)
            found[key] = full in root and is_skeleton_complete(root[full])
    keys = [key for key, complete in found.items() if complete or not complete_only]
    incomplete = [key for key, complete in found.items() if not complete]
    if incomplete and complete_only:
        logging.getLogger(__name__).warning(
            "Skipped %d sequence(s) of %s whose conversion is incomplete (first: %s); finish them with "
            "`nersemble-zarr convert`.", len(incomplete), store_path(store), schema.sequence_group(*incomplete[0]))
    return sorted(keys)


def _groups_under(root: zarr.Group, prefix: str) -> Iterator[tuple[SequenceKey, bool]]:
    """(key, skeleton complete) of the sequence groups ``{prefix}/{source}/{participant}/{sequence}``."""
    if prefix and prefix not in root:
        return
    base = root[prefix] if prefix else root
    for benchmark in VIDEO_SOURCES:
        if benchmark not in base:
            continue
        for participant, participant_group in base[benchmark].groups():
            if not participant.isdigit():
                continue
            for name, group in participant_group.groups():
                yield (benchmark, int(participant), name), is_skeleton_complete(group)


def select_sequences(
    store: StoreLike,
    *,
    benchmark: str | None = None,
    participants: Iterable[int] | None = None,
    sequences: Iterable[str] | None = None,
    level: int | None = 1,
) -> list[SequenceKey]:
    """The store's sequence keys (with a group at ``level``, see ``sequence_keys``), narrowed to a benchmark,
    participants and sequence names (None: any)."""
    participants = None if participants is None else {int(p) for p in participants}
    sequences = None if sequences is None else set(sequences)
    return [
        key for key in sequence_keys(store, level=level)
        if (benchmark is None or key[0] == benchmark) and (participants is None or key[1] in participants)
        and (sequences is None or key[2] in sequences)
    ]


def level_numbers(root: zarr.Group) -> list[int]:
    """Resolution levels (> 1) that have a ``level_{s}`` group under the store's root, ascending."""
    prefix = schema.LEVEL_PREFIX
    return sorted(
        int(name[len(prefix):]) for name, _ in root.groups() if name.startswith(prefix) and name[len(prefix):].isdigit()
    )


def existing_levels(store: StoreLike, benchmark: str, participant: int, sequence: str) -> list[int]:
    """Levels (> 1) of a sequence that have a group in the store, ascending."""
    return [
        level for level in level_numbers(open_group(store))
        if group_exists(store, schema.level_group(level, benchmark, participant, sequence))
    ]


# ---------------------------------------------------------------- completion flags
def camera_flag(store: StoreLike, group: str, variable: str) -> np.ndarray:
    """Per-camera completion (serial,) of one frame variable of a group."""
    return open_array(store, f"{group}/{schema.converted_flag(variable)}")[:]


def camera_flags(store: StoreLike, group: str, has_alpha: bool) -> np.ndarray:
    """Per-camera completion of a group's frames: images (and alpha, when the sequence has it) written."""
    done = camera_flag(store, group, schema.IMAGES)
    if has_alpha:
        done &= camera_flag(store, group, schema.ALPHA)
    return done


def mark_camera_written(store: StoreLike, group: str, variable: str, serial_index: int) -> None:
    """Flag one camera's frames of ``variable`` as completely written."""
    open_array(store, f"{group}/{schema.converted_flag(variable)}", mode="r+")[serial_index] = True


def written_cameras(dataset: xr.Dataset, variable: str = schema.IMAGES) -> np.ndarray:
    """Per-camera completion (serial,) of ``variable`` in an opened sequence Dataset (all False without it)."""
    flag = schema.converted_flag(variable)
    if variable not in dataset or flag not in dataset.coords:
        return np.zeros(dataset.sizes[schema.SERIAL], dtype=bool)
    return np.asarray(dataset[flag].values, dtype=bool)


def is_skeleton_complete(group: zarr.Group) -> bool:
    """True when a sequence group's skeleton was completely written (or the whole sequence was)."""
    return bool(group.attrs.get(schema.SKELETON_ATTR) or group.attrs.get(schema.CONVERTED_ATTR))


def mark_skeleton_complete(store: StoreLike, group: str) -> None:
    """Flag a sequence group's skeleton (metadata, coordinates, point clouds) as completely written."""
    open_group(store, group, mode="r+").attrs[schema.SKELETON_ATTR] = True


def mark_converted(store: StoreLike, group: str) -> None:
    """Flag a sequence as completely converted (one metadata write, which also drops the skeleton marker)."""
    node = open_group(store, group, mode="r+")
    attrs = {key: value for key, value in node.attrs.asdict().items() if key != schema.SKELETON_ATTR}
    node.attrs.put({**attrs, schema.CONVERTED_ATTR: True})


# ---------------------------------------------------------------- consolidated metadata
def consolidate(store: StoreLike) -> None:
    """Write consolidated metadata so opening the store reads one document."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(store_path(store))


def refresh_consolidated_metadata(store: StoreLike) -> None:
    """Re-consolidate the store's metadata when it has any, so readers see the new arrays."""
    if _open_group(store_path(store), "", "r+").metadata.consolidated_metadata is not None:
        consolidate(store)


@contextlib.contextmanager
def writer_lock(store: StoreLike) -> Iterator[None]:
    """Hold the store's advisory lock while a run writes it: one writing run per store at a time. Every command
    that writes into a store takes it (convert, downsample, meshes, split into a store).

    The lock file is ``.{name}.nersemble_zarr-lock`` beside the store (zarr warns about any other object
    inside a store). Another run holding it raises LockError naming its process. Stores on object storage
    (``s3://`` ...) are not locked: there is no file lock there, so do not write one from two runs at once.
    """
    path = store_path(store)
    if _is_remote(path):
        yield
        return
    try:
        real = Path(path).resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: Python's "Symlink loop"
        raise StoreError(f"{path} is not a zarr store: it is a symbolic link that leads in a loop ({error}); "
                         "pass another path.") from None
    with folder_lock(real.parent, writer_lock_name(real), f"run writing the store {path}"):
        yield


def writer_lock_name(store: StoreLike) -> str:
    """The name of a local store's lock file, in the folder that holds the store."""
    return f".{Path(store_path(store)).resolve().name}.nersemble_zarr-lock"
