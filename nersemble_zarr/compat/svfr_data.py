"""The official ``SVFRDataManager`` (single-view face reconstruction input images) over a fetched folder or a store.

With a fetched folder the images are the PNGs at ``svfr/{p:03d}/{sequence}_{timestep}_{serial}/rgb.png``;
with a converted store each ``load_image`` reads the one chunk of that image from ``svfr/{participant}``.
Either way an image is (H, W, 3) uint8 RGB (4 channels where the PNGs carry alpha), as the official returns it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import numpy as np

from .. import catalogue, schema
from ..errors import InputDataError, shown
from .data_managers import ImageKey, is_store


class SVFRDataManager:
    """The input images of one SVFR participant, from a fetched folder or a converted store."""

    def __init__(self, benchmark_folder: str | os.PathLike, participant_id: int) -> None:
        catalogue.check_participants(catalogue.SVFR, [participant_id])
        self._benchmark_folder = os.fspath(benchmark_folder)
        self._location = f"{self._benchmark_folder}/{catalogue.SVFR}/{participant_id:03d}"
        self._participant_id = participant_id
        self._store = is_store(self._benchmark_folder)
        self._dataset = None

    def list_image_keys(self) -> List[ImageKey]:
        """The participant's images present (fetched or converted), sorted by folder name as the official lists them."""
        if self._store:
            dataset = self._images()
            converted = dataset[schema.converted_flag(schema.IMAGES)].values
            keys = [
                catalogue.ImageKey(str(s), int(t), str(c))
                for s, t, c, done in zip(
                    dataset[schema.SVFR_SEQUENCE].values, dataset[schema.TIMESTEP].values,
                    dataset[schema.SERIAL].values, converted)
                if done
            ]
        else:
            folder = Path(self._location)
            if not folder.is_dir():
                raise InputDataError(
                    f"No SVFR images of participant {self._participant_id} under {folder}; fetch them first.")
            keys = [key for entry in folder.iterdir() if entry.is_dir()
                    and (key := catalogue.parse_svfr_folder(entry.name)) is not None]
        keys.sort(key=catalogue.svfr_folder)
        return [ImageKey(key.sequence, key.timestep, key.serial) for key in keys]

    def get_asset_folder(self, image_key: ImageKey) -> str:
        """The image's folder in the fetched layout (timestep not padded, as the download names it)."""
        return f"{self._location}/{catalogue.svfr_folder(_checked(image_key))}"

    def load_image(self, image_key: ImageKey) -> np.ndarray:
        """The image (H, W, 3) uint8 RGB (H, W, 4 with alpha) of ``image_key``."""
        key = _checked(image_key)
        if self._store:
            from .. import store

            return store.svfr_image(self._images(), key.sequence, key.timestep, key.serial)
        from ..convert.svfr import read_svfr_image

        path = Path(self.get_asset_folder(image_key)) / catalogue.SVFR_IMAGE_FILE
        if not path.is_file():
            raise InputDataError(f"Could not find the SVFR image {path}; fetch it first.")
        return read_svfr_image(path)

    def _images(self):
        """The store's Dataset of the participant's images (coordinates loaded, pixels lazy), opened once."""
        from .. import store

        if self._dataset is None:
            tree = store.open(self._benchmark_folder, dask=False)
            self._dataset = store.svfr_images(tree, self._participant_id)
        return self._dataset


def _checked(image_key: ImageKey) -> catalogue.ImageKey:
    """The catalogue key of an ImageKey, refusing names that could leave the participant's folder."""
    if not all(hasattr(image_key, field) for field in ("sequence_name", "timestep", "serial")):
        raise InputDataError(
            f"{shown(image_key)} is not an ImageKey (sequence_name, timestep, serial); "
            "take one from list_image_keys().")
    timestep = image_key.timestep
    if isinstance(timestep, bool) or not isinstance(timestep, (int, np.integer)) or timestep < 0:
        raise InputDataError(f"The timestep {shown(timestep)} of an SVFR image key is not a frame index (an int >= 0).")
    return catalogue.ImageKey(
        catalogue.check_safe_name(image_key.sequence_name, "sequence"), int(timestep),
        catalogue.check_safe_name(image_key.serial, "serial"))

