"""What a converted store holds to evaluate against, read through zarr: each sequence's cameras, original frame
indices, frame size and whether it has alpha, without xarray (no Dataset is built, no dask is imported).

Only the sequences of the evaluated benchmark are opened, and each is checked as ``nz.open`` checks it: damaged
attributes and (local stores) a chunk its flags say was written but that is gone are one StoreError.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import integrity, schema, storage, store_metadata


@dataclass(frozen=True)
class StoredSequence:
    """One stored sequence of a benchmark: its cameras (serial order), original frame indices and frame size."""

    group: str
    serials: tuple[str, ...]
    written: tuple[bool, ...]       # per camera: images flagged as written
    splits: tuple[str, ...] | None  # per camera: "train" or "test" (None: the store records none)
    timesteps: np.ndarray           # (timestep,) int64 original frame indices
    height: int
    width: int
    has_alpha: bool

    def is_written(self, serial: str) -> bool:
        return serial in self.serials and self.written[self.serials.index(serial)]

    def is_hidden(self, serial: str) -> bool:
        """Whether ``serial`` is one of the sequence's hold-out (test) cameras."""
        return self.splits is not None and serial in self.serials and self.splits[self.serials.index(serial)] == "test"


def stored_sequences(store: str, benchmark: str) -> dict[tuple[int, str], StoredSequence]:
    """The sequences of ``benchmark`` in ``store`` that hold frames, by (participant, sequence)."""
    storage.read_root_attrs(store)
    found = {}
    for key_benchmark, participant, name in storage.sequence_keys(store):
        if key_benchmark != benchmark:
            continue
        group_path = schema.sequence_group(benchmark, participant, name)
        group = _checked_group(store, group_path)
        members = dict(group.arrays())
        if schema.IMAGES not in members:
            continue
        images = members[schema.IMAGES]
        dims = tuple(images.metadata.dimension_names or ())
        serials = tuple(str(serial) for serial in members[schema.SERIAL][...])
        flag = members.get(schema.converted_flag(schema.IMAGES))
        written = np.zeros(len(serials), dtype=bool) if flag is None else np.asarray(flag[...], dtype=bool)
        split = members.get(schema.SPLIT)
        found[participant, name] = StoredSequence(
            group=group_path,
            serials=serials,
            written=tuple(bool(w) for w in written),
            splits=None if split is None else tuple(str(s) for s in split[...]),
            timesteps=np.asarray(members[schema.TIMESTEP][...], dtype=np.int64),
            height=int(images.shape[dims.index(schema.Y)]),
            width=int(images.shape[dims.index(schema.X)]),
            has_alpha=schema.ALPHA in members,
        )
    return found


def _checked_group(store: str, path: str):
    """The zarr group ``path``, after checking its attributes and its parents' and its flagged chunks."""
    where = storage.store_path(store)
    group = storage.open_group(store, path)
    parts = path.split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        store_metadata.check_group_attrs(where, parent, dict(storage.open_group(store, parent).attrs))
    store_metadata.check_group_attrs(where, path, dict(group.attrs))
    integrity.check_group(where, group)
    return group
