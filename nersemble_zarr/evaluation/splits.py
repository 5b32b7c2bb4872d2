"""Validation splits: the frames a method holds out of its own training to evaluate on, the same everywhere.

The benchmark's own hold-out (test) cameras have no video, so a local validation loop holds out part of
what is public: train cameras (NVS), whole train sequences and/or the trailing frames of every sequence
(mono). ``FrameDataset(split="train", validation=...)``, ``export_frames(validation=...)`` and
``evaluate(validation=...)`` all read the same ``ValidationSplit``, kept in a small JSON file or in the
store's root attributes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import catalogue, storage
from ..errors import ConfigError
from ..atomic import atomic_path
from ..inputs.jsontext import kind_of, read_json_file
from ..inputs.origin import Origin
from ..outputs import claim_output_file

SPLIT_ATTR = "validation_split"


@dataclass(frozen=True)
class ValidationSplit:
    """Which frames of a benchmark are held out for validation.

    A frame is a validation frame when its camera is in ``serials``, its sequence in ``sequences``, or it
    is among the last ``trailing_frames`` stored frames of its sequence. Every other frame is for training.
    """

    benchmark: str
    serials: tuple[str, ...] = ()
    sequences: tuple[str, ...] = ()
    trailing_frames: int = 0

    def __post_init__(self) -> None:
        catalogue.check_benchmark(self.benchmark)
        object.__setattr__(self, "serials", tuple(str(s) for s in self.serials))
        object.__setattr__(self, "sequences", tuple(str(s) for s in self.sequences))
        for serial in self.serials:
            catalogue.check_serial(serial)
            if catalogue.split_of(self.benchmark, serial) != "train":
                raise ConfigError(
                    f"Camera {serial} is a hold-out camera of {self.benchmark} without video; "
                    "a validation split holds out train cameras only."
                )
        for name in self.sequences:
            if self.benchmark != "mono_flame_avatar" or name not in catalogue.MONO_TRAIN_SEQUENCES:
                raise ConfigError(
                    f"Sequence {name!r} cannot be held out: only mono_flame_avatar train sequences "
                    f"({', '.join(catalogue.MONO_TRAIN_SEQUENCES[:3])}, ...) can."
                )
        if isinstance(self.trailing_frames, bool) or not isinstance(self.trailing_frames, int) or self.trailing_frames < 0:
            raise ConfigError(f"Trailing frames {self.trailing_frames!r} is invalid; expected a count >= 0.")
        if not (self.serials or self.sequences or self.trailing_frames):
            raise ConfigError("A validation split must hold out cameras, sequences or trailing frames.")

    def holds_out_any(self, sequence: str, serial: str) -> bool:
        """True when some frame of this camera in this sequence is a validation frame."""
        return serial in self.serials or sequence in self.sequences or self.trailing_frames > 0

    def validation_mask(self, sequence: str, serial: str, n_timesteps: int) -> np.ndarray:
        """(n_timesteps,) bool: True where the frame of ``serial`` at that stored position is held out."""
        if serial in self.serials or sequence in self.sequences:
            return np.ones(n_timesteps, dtype=bool)
        mask = np.zeros(n_timesteps, dtype=bool)
        if self.trailing_frames:
            mask[max(0, n_timesteps - self.trailing_frames):] = True
        return mask

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, document: dict, where: str) -> "ValidationSplit":
        """Build a split from its JSON form; ``where`` names the file or store in the error message."""
        keys = {"benchmark", "serials", "sequences", "trailing_frames"}
        if not isinstance(document, dict) or "benchmark" not in document or set(document) - keys:
            raise ConfigError(f"{where} does not hold a validation split; expected the keys {', '.join(sorted(keys))}.")
        if not isinstance(document["benchmark"], str):
            raise ConfigError(f"{where} names the benchmark with {kind_of(document['benchmark'])}; expected its name.")
        for key in ("serials", "sequences"):
            value = document.get(key, [])
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                found = kind_of(value) if not isinstance(value, list) else "a list of other values than names"
                raise ConfigError(f"{where} has {found} as {key!r}; expected a list of names.")
        return cls(
            document["benchmark"], tuple(document.get("serials", ())), tuple(document.get("sequences", ())),
            document.get("trailing_frames", 0),
        )


def write_split(split: ValidationSplit, target: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Save ``split`` as a JSON file (atomically), or into a store's root attributes when ``target`` is one.

    An existing file, or another split already in the store, is only replaced with ``overwrite``.
    """
    target = Path(target)
    if (target / "zarr.json").is_file():
        with storage.writer_lock(target):
            held = storage.read_root_attrs(target).get(SPLIT_ATTR)
            if held is not None and held != split.to_dict() and not overwrite:
                raise ConfigError(f"The store {target} already holds another validation split; pass --overwrite to "
                                  "replace it.")
            root = storage.prepare_store(target)
            root.attrs[SPLIT_ATTR] = split.to_dict()
            storage.consolidate(target)
        return target
    claim_output_file(target, overwrite=overwrite, what="split file")
    with atomic_path(target) as temporary:
        temporary.write_text(json.dumps(split.to_dict(), indent=1) + "\n")
    return target


def read_split(source) -> ValidationSplit:
    """A split given as a ``ValidationSplit``, a JSON file written by ``write_split``, or a store holding one."""
    if isinstance(source, ValidationSplit):
        return source
    path = Path(source)
    if (path / "zarr.json").is_file():
        attrs = storage.read_root_attrs(path)
        if SPLIT_ATTR not in attrs:
            raise ConfigError(f"The store {path} holds no validation split; write one with `nersemble-zarr split`.")
        return ValidationSplit.from_dict(attrs[SPLIT_ATTR], str(path))
    if not path.exists():
        raise ConfigError(f"The validation split {path} does not exist.")
    origin = Origin(f"The validation split {path}", "write it again with `nersemble-zarr split`")
    return ValidationSplit.from_dict(read_json_file(path, origin), str(path))
