"""A PyTorch ``Dataset`` of single frames of the store, for training loops.

    loader = make_dataloader("nersemble.zarr", "nvs", participants=[388], batch_size=8, num_workers=4)
    for batch in loader:   # batch["image"] (B, 3, H, W) float32 in [0, 1], batch["world_2_cam"] (B, 4, 4), ...

Each item is one frame of one camera: a (serial, timestep) of one sequence. Cameras, timesteps and FLAME
parameters are read once into memory when the dataset is made; frames are read on demand from the store,
which every worker process opens for itself on its first item (nothing open is pickled or inherited).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import catalogue, schema, storage
from . import store as store_module
from .chunk_reader import frame_reader
from .colour import correct_colour, stored_colour_correction
from .errors import ConfigError, StoreError, shown

SPLITS = ("train", "test", "validation")
FLAME_PARAMS = (*schema.FLAME_TIMESTEP_PARAMS, *schema.FLAME_STATIC_PARAMS)


@dataclass(frozen=True)
class SequenceFrames:
    """What the dataset keeps in memory about one sequence: its cameras, timesteps and FLAME parameters."""

    group: str                      # e.g. "nvs/388/GLASSES", or "level_2/nvs/388/GLASSES"
    serials: tuple[str, ...]        # every camera of the sequence's ``serial`` coordinate
    world_2_cam: np.ndarray         # (serial, 4, 4) float32
    intrinsics: np.ndarray          # (serial, 3, 3) float32
    timesteps: np.ndarray           # (timestep,) int64, original frame indices
    has_alpha: bool
    flame: dict[str, np.ndarray] | None  # name -> float32 array, per-timestep ones with timestep first
    colour_correction: np.ndarray | None = None  # (serial, 3, terms) float64 when frames are corrected on reading


class FrameDataset(Dataset):
    """Single frames (one camera, one timestep) of a benchmark's sequences in a converted store.

    ``split`` ("train", "test" or None for both) and ``serials`` choose the cameras; only cameras whose
    frames are stored take part. With a ``validation`` split (a ``ValidationSplit``, or a JSON file or store
    holding one) "train" leaves out its validation frames and "validation" gives exactly those. ``participants`` / ``sequences`` narrow the sequences (default: every
    sequence of ``benchmark`` in the store that has frames). ``level`` s > 1 reads the frames and
    intrinsics of resolution level s (written by ``nersemble-zarr downsample``, or for ``benchmark`` "dataset" by
    ``convert --level``: the dataset's sequences that have that level). The dataset has no hold-out cameras: its
    "train" split (and None) is every camera. Items are dicts of tensors:
    ``image`` (3, H, W) and ``alpha`` (1, H, W) as float32 in [0, 1] (or uint8 with ``dtype=torch.uint8``),
    ``world_2_cam`` (4, 4) and ``intrinsics`` (3, 3) float32 (OpenCV world-to-camera), ``timestep`` (the
    original frame index), ``serial_index`` (position in the sequence's ``serial`` coordinate),
    ``sequence_index`` (position in ``self.sequences``), and ``flame``: a dict of float32 FLAME parameters
    of that timestep (expression, rotation, ..., shape, scale) when the sequences have tracking.
    ``colour_correct`` corrects each image with its camera's matrix of the group's ``colour_correction``
    coordinate as it is read (on the CPU, as ``nersemble_zarr.colour.correct_colour``; at a level after the
    stored area-averaging); a group whose frames are corrected already, or without matrices, is a ConfigError.
    """

    def __init__(
        self,
        store: str | os.PathLike,
        benchmark: str,
        *,
        participants: Iterable[int] | None = None,
        sequences: Iterable[str] | None = None,
        split: str | None = "train",
        serials: Iterable[str] | None = None,
        level: int = 1,
        dtype: torch.dtype = torch.float32,
        validation: Any = None,
        colour_correct: bool = False,
    ) -> None:
        if isinstance(level, bool) or not isinstance(level, int) or level < 1:
            raise ConfigError(f"Resolution level {shown(level)} is invalid; expected 1 (full resolution) or a level >= 2.")
        if split not in (*SPLITS, None):
            raise ConfigError(f"Split {shown(split)} is unknown; expected 'train', 'test', 'validation' or None (both).")
        held_out = _validation_split(validation, split, benchmark)
        if dtype not in (torch.float32, torch.uint8):
            raise ConfigError(f"Frame dtype {dtype} is not supported; expected torch.float32 or torch.uint8.")
        serials = None if serials is None else tuple(str(s) for s in serials)
        self.store = os.fspath(store)
        self.dtype = dtype
        tree = store_module.open(self.store)
        benchmark = catalogue.check_benchmark(benchmark, storage.VIDEO_SOURCES)
        if benchmark == schema.DATASET and split == "test":
            raise ConfigError("The dataset has no hold-out cameras: split 'test' is empty; use split=None or 'train' "
                              "(every camera).")
        self.sequences = _select_sequences(tree, self.store, benchmark, participants, sequences, level, colour_correct)
        rows = []
        for index, sequence in enumerate(self.sequences):
            camera_split = "train" if split == "validation" else split
            cameras = _select_cameras(tree[sequence.group].to_dataset(), sequence.group, camera_split, serials)
            grid = np.stack(np.meshgrid(cameras, np.arange(len(sequence.timesteps)), indexing="ij"), -1).reshape(-1, 2)
            if held_out is not None:
                name, n = sequence.group.rsplit("/", 1)[-1], len(sequence.timesteps)
                masks = {c: held_out.validation_mask(name, sequence.serials[c], n) for c in cameras}
                keep = np.array([masks[c][t] for c, t in grid], dtype=bool).reshape(-1)
                grid = grid[keep if split == "validation" else ~keep]
            rows.append(np.column_stack([np.full(len(grid), index), grid]))
        # (sequence_index, serial_index, timestep_index) of every item: small and cheap to pickle.
        self.index = np.concatenate(rows).astype(np.int64) if rows else np.empty((0, 3), np.int64)
        if len(self.index) == 0:
            raise StoreError(
                f"{self.store} has no stored frames of {benchmark} for split {shown(split)}"
                + (f" and cameras {', '.join(serials)}" if serials else "") + "; convert them first."
            )
        self._readers: dict[tuple[int, str], Callable[[tuple[int, ...]], np.ndarray]] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, Any]:
        sequence_index, serial_index, timestep_index = (int(v) for v in self.index[item])
        sequence = self.sequences[sequence_index]
        result: dict[str, Any] = {
            "image": self._frame(sequence_index, schema.IMAGES, serial_index, timestep_index,
                                 sequence.colour_correction).permute(2, 0, 1),
            "world_2_cam": torch.from_numpy(sequence.world_2_cam[serial_index]),
            "intrinsics": torch.from_numpy(sequence.intrinsics[serial_index]),
            "timestep": torch.tensor(sequence.timesteps[timestep_index]),
            "serial_index": torch.tensor(serial_index),
            "sequence_index": torch.tensor(sequence_index),
        }
        if sequence.has_alpha:
            result["alpha"] = self._frame(sequence_index, schema.ALPHA, serial_index, timestep_index)[None]
        if sequence.flame is not None:
            result["flame"] = {
                name: torch.from_numpy(values[timestep_index] if name in schema.FLAME_TIMESTEP_PARAMS else values)
                for name, values in sequence.flame.items()
            }
        return result

    def item_key(self, item: int) -> tuple[str, str, int]:
        """(sequence group, camera serial, original timestep) of an item, for logging and checks."""
        sequence_index, serial_index, timestep_index = (int(v) for v in self.index[item])
        sequence = self.sequences[sequence_index]
        return sequence.group, sequence.serials[serial_index], int(sequence.timesteps[timestep_index])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_readers"] = {}  # never pickle open zarr arrays; each process opens its own
        return state

    def _frame(self, sequence_index: int, variable: str, serial_index: int, timestep_index: int,
               colour_correction: np.ndarray | None = None) -> torch.Tensor:
        frame = self._reader(sequence_index, variable)((serial_index, timestep_index))
        if colour_correction is not None:
            # torch's thread count: 1 in a DataLoader worker, so workers do not oversubscribe the cores
            frame = correct_colour(frame, colour_correction[serial_index], threads=torch.get_num_threads())
        if self.dtype == torch.float32:  # in numpy: torch's thread pool costs more than the division on one frame
            frame = np.divide(frame, np.float32(255), dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(frame))

    def _reader(self, sequence_index: int, variable: str) -> Callable[[tuple[int, ...]], np.ndarray]:
        """The frame reader of a frame variable, opened once per process (forked workers reopen it)."""
        if self._pid != os.getpid():
            self._readers, self._pid = {}, os.getpid()
        key = (sequence_index, variable)
        if key not in self._readers:
            path = f"{self.sequences[sequence_index].group}/{variable}"
            self._readers[key] = frame_reader(storage.open_array(self.store, path))
        return self._readers[key]


def make_dataloader(
    store: str | os.PathLike,
    benchmark: str,
    *,
    batch_size: int = 1,
    shuffle: bool = True,
    num_workers: int = 0,
    seed: int | None = None,
    multiprocessing_context: str | None = None,
    dtype: torch.dtype = torch.float32,
    **selection: Any,
) -> DataLoader:
    """A ``DataLoader`` over a ``FrameDataset`` of ``store`` (random frames per epoch with ``shuffle``).

    ``selection`` goes to ``FrameDataset`` (participants, sequences, split, serials, level, validation,
    colour_correct). ``seed`` fixes the shuffling order; ``num_workers`` worker processes read frames in
    parallel, each opening the store itself.
    """
    dataset = FrameDataset(store, benchmark, dtype=dtype, **selection)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers, generator=generator,
        multiprocessing_context=multiprocessing_context if num_workers else None,
        persistent_workers=num_workers > 0,
    )


def _select_sequences(
    tree, store: str, benchmark: str, participants: Iterable[int] | None, sequences: Iterable[str] | None, level: int,
    colour_correct: bool = False,
) -> list[SequenceFrames]:
    """The sequences of ``benchmark`` in the store that have frames (at ``level``), narrowed by participants
    and names; with ``colour_correct`` each with its colour correction matrices."""
    wanted_participants = None if participants is None else {int(p) for p in participants}
    wanted_sequences = None if sequences is None else set(sequences)
    # A benchmark's sequences all have every level downsample wrote; a dataset sequence has the levels it was
    # converted at, so the dataset's are those that have ``level``.
    keys = storage.select_sequences(
        store, benchmark=benchmark, participants=wanted_participants, sequences=wanted_sequences,
        level=level if benchmark == schema.DATASET else 1,
    )
    for participant in sorted(wanted_participants or ()):
        if not any(key[1] == participant for key in keys):
            raise StoreError(f"{store} has no {benchmark} sequence of participant {participant}.")
    for name in sorted(wanted_sequences or ()):
        if not any(key[2] == name for key in keys):
            raise StoreError(f"{store} has no {benchmark} sequence {shown(name)}.")
    found = []
    for key in keys:
        group = schema.level_group(level, *key)
        try:
            dataset = tree[group].to_dataset()
        except KeyError as error:
            raise StoreError(missing_level_sentence(tree, store, key, level)) from error
        if schema.IMAGES in dataset:
            found.append(_sequence_frames(dataset, group, colour_correct))
    return found


def missing_level_sentence(tree, store: str, key: storage.SequenceKey, level: int) -> str:
    """Why a sequence has no group at ``level``, and the command that writes one."""
    full = schema.sequence_group(*key)
    try:
        tree[full]
    except KeyError:
        return (f"{store} holds {full} only at other resolution levels (it was converted straight to a level); "
                f"convert it with `nersemble-zarr convert ... -b dataset --level {level}`.")
    return (f"{store} has no resolution level {level} of {full}; write it with `nersemble-zarr downsample "
            f"{store} --levels {level}`.")


def _sequence_frames(dataset, group: str, colour_correct: bool = False) -> SequenceFrames:
    flame = None
    if all(name in dataset.coords for name in FLAME_PARAMS):
        flame = {name: np.asarray(dataset[name].values, dtype=np.float32) for name in FLAME_PARAMS}
    return SequenceFrames(
        group=group,
        serials=tuple(str(s) for s in dataset[schema.SERIAL].values),
        world_2_cam=np.asarray(dataset[schema.WORLD_2_CAM].values, dtype=np.float32),
        intrinsics=np.asarray(dataset[schema.INTRINSICS].values, dtype=np.float32),
        timesteps=np.asarray(dataset[schema.TIMESTEP].values, dtype=np.int64),
        has_alpha=schema.ALPHA in dataset,
        flame=flame,
        colour_correction=stored_colour_correction(dataset, f"store group {group}") if colour_correct else None,
    )


def _validation_split(validation: Any, split: str | None, benchmark: str):
    """The ValidationSplit to apply (None without one), after checking it fits ``split`` and ``benchmark``."""
    if validation is None:
        if split == "validation":
            raise ConfigError("Split 'validation' needs a validation split; pass validation=ValidationSplit(...).")
        return None
    from .evaluation.splits import read_split

    held_out = read_split(validation)
    if held_out.benchmark != benchmark:
        raise ConfigError(f"The validation split is for {held_out.benchmark}, not {benchmark}.")
    if split not in ("train", "validation"):
        raise ConfigError(f"A validation split applies to split 'train' or 'validation', not {split!r}.")
    return held_out


def _select_cameras(dataset, group: str, split: str | None, serials: tuple[str, ...] | None) -> np.ndarray:
    """Indices (into the serial coordinate) of the chosen cameras whose frames are all stored."""
    all_serials = [str(s) for s in dataset[schema.SERIAL].values]
    chosen = np.ones(len(all_serials), dtype=bool)
    if split is not None and schema.SPLIT in dataset.coords:  # the dataset has no split: every camera trains
        chosen &= np.array([str(s) == split for s in dataset[schema.SPLIT].values])
    if serials is not None:
        for serial in serials:
            if serial not in all_serials:
                raise StoreError(f"Camera {shown(serial)} is not a camera of {group}; it has {', '.join(all_serials)}.")
        chosen &= np.isin(all_serials, serials)
    chosen &= storage.written_cameras(dataset)
    return np.flatnonzero(chosen)
