"""The dataset kit's data managers over a converted store (``convert -b dataset``) instead of a folder.

``NeRSembleDataManager(store)`` and ``NeRSembleParticipantDataManager(store, participant)`` return these when
given a store: the same methods, read from the store's ``dataset/...`` groups (at any resolution level).
``load_image(..., downscale_factor=s)`` reads the group of level s when the store has it (an area average of
``W // s`` x ``H // s``; the kit's bilinear resize gives ``round(W / s)`` x ``round(H / s)``), else shrinks the
uncorrected full-resolution frame as the kit does. Colour correction is read from a corrected group, or applied on
the way out of an uncorrected one; a corrected group cannot give uncorrected frames (asking only it for them is
refused in one sentence).
Calibrations are parsed from the JSON texts the group keeps, so they equal the kit's exactly.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Dict, List, Optional

import numpy as np
import xarray as xr

from .. import schema, storage
from .. import store as store_module
from ..errors import InputDataError, StoreError, shown
from ..inputs.colour_calibration import parse_colour_calibration
from ..inputs.dataset_calibration import parse_dataset_calibration
from ..inputs.origin import Origin
from .dataset_managers import (
    CameraParams, NeRSembleDataManager, NeRSembleParticipantDataManager, _downscale, as_kit_image, check_timestep,
)


def is_store(path: str | os.PathLike) -> bool:
    """True when ``path`` is a zarr store (a local folder with ``zarr.json``, or an fsspec URL)."""
    location = os.fspath(path)
    return "://" in location or os.path.isfile(os.path.join(location, "zarr.json"))


class StoreDataManager(NeRSembleDataManager):
    """The dataset participants of a store."""

    def list_participants(self) -> List[int]:
        """IDs of the participants with a dataset sequence in the store (at any level), sorted."""
        keys = storage.sequence_keys(self._nersemble_folder, level=None)
        return sorted({participant for source, participant, _ in keys if source == schema.DATASET})


class StoreParticipantDataManager(NeRSembleParticipantDataManager):
    """One participant's dataset sequences in a store."""

    @cached_property
    def _tree(self) -> xr.DataTree:
        return store_module.open(self._location)

    @cached_property
    def _levels(self) -> Dict[str, List[int]]:
        """sequence -> the resolution levels the store holds it at, ascending."""
        found: Dict[str, List[int]] = {}
        for level in [1] + storage.level_numbers(storage.open_group(self._location)):
            for source, participant, name in storage.sequence_keys(self._location, level=level):
                if source == schema.DATASET and participant == self._participant_id:
                    found.setdefault(name, []).append(level)
        return found

    def _sequence(self, sequence_name: str, level: Optional[int] = None) -> xr.Dataset:
        """The sequence's Dataset at ``level`` (default: the finest level the store holds)."""
        levels = self._levels.get(sequence_name)
        if not levels:
            raise InputDataError(f"The store {self._location} has no sequence {shown(sequence_name)} of participant "
                                 f"{self._participant_id}; its sequences: {', '.join(sorted(self._levels)) or 'none'}.")
        return store_module.sequence(self._tree, schema.DATASET, self._participant_id, sequence_name,
                                     level=levels[0] if level is None else level)

    def _any_group_attrs(self) -> dict:
        if not self._levels:
            raise InputDataError(f"The store {self._location} has no dataset sequence of participant "
                                 f"{self._participant_id}.")
        return self._sequence(sorted(self._levels)[0]).attrs

    # ---------------------------------------------------------------- assets
    def load_camera_calibration(self) -> CameraParams:
        """The participant's cameras, parsed from the ``camera_params.json`` text the store keeps."""
        origin = Origin(f"The camera calibration kept in the store {self._location}", "convert it again")
        world_2_cam, intrinsics = parse_dataset_calibration(self._any_group_attrs()[schema.CALIBRATION_JSON_ATTR],
                                                            origin)
        return CameraParams({s: m.astype(np.float32) for s, m in world_2_cam.items()}, intrinsics.astype(np.float32))

    def load_color_calibration(self) -> Dict[str, np.ndarray]:
        """Colour matrices by serial, parsed from the ``color_calibration.json`` text the store keeps."""
        text = self._any_group_attrs().get(schema.COLOUR_CALIBRATION_JSON_ATTR)
        if text is None:
            raise InputDataError(f"The store {self._location} holds no colour calibration of participant "
                                 f"{self._participant_id} (none was fetched when it was converted).")
        origin = Origin(f"The colour calibration kept in the store {self._location}", "convert it again")
        return parse_colour_calibration(text.encode("utf-8"), origin)

    def list_cameras(self, sequence_name: str) -> List[str]:
        """Serials of the sequence's cameras with frames in the store, sorted."""
        return sorted(self._sequence(sequence_name).attrs.get(schema.VIDEO_SERIALS_ATTR, []))

    def list_sequences(self) -> List[str]:
        """Names of the participant's sequences in the store, sorted."""
        return sorted(self._levels)

    def get_n_timesteps(self, sequence_name: str) -> int:
        """Number of frames of the sequence."""
        return int(self._sequence(sequence_name).sizes[schema.TIMESTEP])

    def _group_for(self, sequence_name: str, downscale_factor: Optional[float], correct: bool
                   ) -> tuple[xr.Dataset, bool]:
        """(the group a frame is read from, whether it is then shrunk as the kit does): the group of level
        ``downscale_factor`` when the store has it with frames usable for ``correct`` (a corrected group gives only
        corrected frames), else the uncorrected full-resolution group, shrunk; else one sentence saying why not."""
        if sequence_name not in self._levels:
            self._sequence(sequence_name)  # the sentence for an unknown sequence
        levels = self._levels[sequence_name]
        wanted = _as_level(downscale_factor)
        groups = {level: self._sequence(sequence_name, level) for level in {wanted, 1} & set(levels)}
        corrected = {level: bool(group.attrs.get(schema.COLOUR_CORRECTED_ATTR, False))
                     for level, group in groups.items()}
        if wanted in groups and (correct or not corrected[wanted]):
            return groups[wanted], False
        if wanted != 1 and 1 in groups and not corrected[1]:
            return groups[1], True
        if wanted in groups or 1 in groups:
            raise InputDataError(f"The store {self._location} holds only colour-corrected frames of {sequence_name} at "
                                 f"level {wanted if wanted in groups else 1}; pass apply_color_correction=True, or "
                                 "convert without --colour-correct.")
        raise InputDataError(f"The store {self._location} holds {sequence_name} at level(s) "
                             f"{', '.join(map(str, levels))}, not at downscale_factor {downscale_factor} nor at full "
                             "resolution to shrink; convert it with that --level.")

    def load_image(
        self,
        sequence_name: str,
        serial: str,
        timestep: int,
        as_uint8: bool = False,
        apply_color_correction: bool = False,
        downscale_factor: Optional[float] = None,
    ) -> np.ndarray:
        """Frame ``timestep`` of a camera as (H, W, 3) RGB, uint8 or float in [0, 1]; see the module docstring
        for ``downscale_factor`` and colour correction."""
        check_timestep(timestep)
        dataset, resize = self._group_for(sequence_name, downscale_factor, apply_color_correction)
        corrected = bool(dataset.attrs.get(schema.COLOUR_CORRECTED_ATTR, False))
        if timestep >= dataset.sizes[schema.TIMESTEP]:
            raise InputDataError(f"Timestep {timestep} is out of range: {sequence_name} has "
                                 f"{dataset.sizes[schema.TIMESTEP]} frames.")
        try:
            image = store_module.frame(dataset, str(serial), int(timestep))
        except StoreError as error:
            raise InputDataError(str(error)) from None
        if resize:
            image = _downscale(image, downscale_factor)
        matrix = None
        if apply_color_correction and not corrected:
            index = list(dataset.indexes[schema.SERIAL]).index(str(serial))
            if schema.COLOUR_CORRECTION not in dataset.coords:
                raise InputDataError(f"The store {self._location} holds no colour calibration of participant "
                                     f"{self._participant_id}.")
            matrix = dataset[schema.COLOUR_CORRECTION].values[index]
        return as_kit_image(image, matrix, as_uint8)


def _as_level(factor: Optional[float]) -> Optional[int]:
    """The resolution level a ``downscale_factor`` names (a whole number), else None (1 for no factor)."""
    if factor is None:
        return 1
    if isinstance(factor, bool) or not isinstance(factor, (int, float, np.integer, np.floating)) or not factor > 0:
        raise InputDataError(f"downscale_factor {shown(factor)} is invalid; expected a positive number.")
    return int(factor) if float(factor).is_integer() else None
