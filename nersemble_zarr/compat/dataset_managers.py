"""The official dataset kit's data managers (``nersemble_data.data.nersemble_data``) over a NeRSemble v2 folder,
or over a store converted from one (``convert -b dataset``; ``compat.dataset_store``).

Same names, methods and arguments; change the import, keep the code. What differs, on purpose:

* videos are decoded with PyAV (the kit uses OpenCV): pixels agree within one level;
* ``list_participants``, ``list_sequences`` and ``list_cameras`` are sorted; ``list_sequences`` leaves out
  ``BACKGROUND``, which holds pictures, not videos (the kit lists it, and its own ``list_cameras`` then fails);
* calibration files are read with explicit limits and checked: a bad file, camera, sequence or timestep is one
  InputDataError sentence naming it;
* matrices are plain float32 numpy arrays (the kit's are dreifus ``Pose``/``Intrinsics``, float32 numpy subclasses
  with the same values); colour matrices are float64, as the kit's;
* the colour correction is ``nersemble_zarr.colour.correct_colour`` (numba, float32, no colour-science):
  uint8 images within one level of the kit's, float images within 1e-5.
"""

from __future__ import annotations

import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..colour import correct_colour
from ..errors import InputDataError, shown
from ..inputs.colour_calibration import read_colour_calibration
from ..inputs.dataset_calibration import read_dataset_calibration
from ..video import iter_frames, probe

_PARTICIPANT_FOLDER = re.compile(r"^\d{3}$")
_VIDEO = re.compile(r"^cam_(\d+)\.mp4$")


@dataclass
class CameraParams:
    """World-to-camera matrices (4x4, OpenCV convention) by serial and ONE 3x3 intrinsic matrix for all cameras."""

    world_2_cam: Dict[str, np.ndarray]
    intrinsics: np.ndarray


class NeRSembleParticipantDataManager:
    """Loads one participant's calibration, colour calibration and video frames from a dataset folder (or, given a
    converted store, from its dataset groups)."""

    def __new__(cls, nersemble_folder: str | os.PathLike, participant_id: int):
        if cls is NeRSembleParticipantDataManager:
            from .dataset_store import StoreParticipantDataManager, is_store

            if is_store(nersemble_folder):
                return super().__new__(StoreParticipantDataManager)
        return super().__new__(cls)

    def __init__(self, nersemble_folder: str | os.PathLike, participant_id: int) -> None:
        self._location = os.fspath(nersemble_folder)
        self._participant_id = int(participant_id)

    # ---------------------------------------------------------------- assets
    def load_camera_calibration(self) -> CameraParams:
        """The participant's cameras: ``world_2_cam`` by serial (file order) and the shared ``intrinsics``."""
        world_2_cam, intrinsics = read_dataset_calibration(Path(self.get_camera_calibration_path()))
        return CameraParams(
            {serial: matrix.astype(np.float32) for serial, matrix in world_2_cam.items()}, intrinsics.astype(np.float32)
        )

    def load_color_calibration(self) -> Dict[str, np.ndarray]:
        """Colour matrices (3 x terms, float64) by serial, in the file's order."""
        return read_colour_calibration(Path(self.get_color_calibration_path()))

    def list_timesteps(self, sequence_name: str) -> List[int]:
        """0, 1, ..., n - 1 for the sequence's n frames."""
        return list(range(self.get_n_timesteps(sequence_name)))

    def list_cameras(self, sequence_name: str) -> List[str]:
        """Serials of the sequence's videos (``images/cam_{serial}.mp4``), sorted."""
        folder = Path(self.get_images_path(sequence_name, "serial")).parent
        if not folder.is_dir():
            raise InputDataError(f"Participant {self._participant_id} has no sequence {shown(sequence_name)}: "
                                 f"{folder} does not exist.")
        return sorted(match.group(1) for name in os.listdir(folder) if (match := _VIDEO.match(name)))

    def list_sequences(self) -> List[str]:
        """Names of the sequences with videos, sorted; [] when the participant has none."""
        folder = Path(self._location) / f"{self._participant_id:03d}" / "sequences"
        if not folder.is_dir():
            return []
        return sorted(entry.name for entry in folder.iterdir() if (entry / "images").is_dir())

    def get_n_timesteps(self, sequence_name: str) -> int:
        """Number of frames of the sequence (of its first camera's video)."""
        serials = self.list_cameras(sequence_name)
        if not serials:
            folder = Path(self.get_images_path(sequence_name, "serial")).parent
            raise InputDataError(f"The folder {folder} holds no camera video (cam_SERIAL.mp4).")
        return probe(self.get_images_path(sequence_name, serials[0]), quick=True).n_frames

    def load_image(
        self,
        sequence_name: str,
        serial: str,
        timestep: int,
        as_uint8: bool = False,
        apply_color_correction: bool = False,
        downscale_factor: Optional[float] = None,
    ) -> np.ndarray:
        """Frame ``timestep`` of a camera's video as (H, W, 3) RGB: uint8, or float in [0, 1] unless ``as_uint8``.

        ``downscale_factor`` shrinks it first (bilinear, as the kit), then ``apply_color_correction`` applies the
        camera's colour matrix. Frames before ``timestep`` are decoded too (H.264 has no cheap exact seek).
        """
        path = self.get_images_path(sequence_name, serial)
        check_timestep(timestep)
        image = next(iter_frames(path, start=int(timestep), stop=int(timestep) + 1), None)
        if image is None:
            frames = probe(path, quick=True).n_frames
            raise InputDataError(f"Timestep {timestep} is out of range: {path} has {frames} frames.")
        if downscale_factor is not None:
            image = _downscale(image, downscale_factor)
        matrix = None
        if apply_color_correction:
            matrices = self.load_color_calibration()
            if serial not in matrices:
                raise InputDataError(f"The colour calibration {self.get_color_calibration_path()} has no matrix for "
                                     f"camera {shown(serial)}.")
            matrix = matrices[serial]
        return as_kit_image(image, matrix, as_uint8)

    # ---------------------------------------------------------------- paths
    def get_camera_calibration_path(self) -> str:
        """``{folder}/{p:03d}/calibration/camera_params.json``."""
        return f"{self._location}/{self._participant_id:03d}/calibration/camera_params.json"

    def get_color_calibration_path(self) -> str:
        """``{folder}/{p:03d}/calibration/color_calibration.json``."""
        return f"{self._location}/{self._participant_id:03d}/calibration/color_calibration.json"

    def get_images_path(self, sequence_name: str, serial: str) -> str:
        """``{folder}/{p:03d}/sequences/{sequence}/images/cam_{serial}.mp4``; names with path separators refused."""
        for name, value in (("sequence", sequence_name), ("camera serial", serial)):
            if not isinstance(value, str) or not value or "/" in value or "\\" in value or value in (".", ".."):
                raise InputDataError(f"The {name} {shown(value)} is not a valid name.")
        return f"{self._location}/{self._participant_id:03d}/sequences/{sequence_name}/images/cam_{serial}.mp4"


class NeRSembleDataManager:
    """The participants of a dataset folder (or of a converted store's dataset groups)."""

    def __new__(cls, nersemble_folder: str | os.PathLike):
        if cls is NeRSembleDataManager:
            from .dataset_store import StoreDataManager, is_store

            if is_store(nersemble_folder):
                return super().__new__(StoreDataManager)
        return super().__new__(cls)

    def __init__(self, nersemble_folder: str | os.PathLike) -> None:
        self._nersemble_folder = os.fspath(nersemble_folder)

    def list_participants(self) -> List[int]:
        """IDs of the participant folders (``017``, ...), sorted."""
        folder = Path(self._nersemble_folder)
        if not folder.is_dir():
            raise InputDataError(f"The dataset folder {folder} does not exist.")
        return sorted(int(e.name) for e in folder.iterdir() if e.is_dir() and _PARTICIPANT_FOLDER.match(e.name))


def check_timestep(timestep: object) -> None:
    """Refuse a timestep that is not a whole frame number from 0 (the range is the caller's to check)."""
    if isinstance(timestep, bool) or not isinstance(timestep, (int, np.integer)) or timestep < 0:
        raise InputDataError(f"Timestep {shown(timestep)} is invalid; expected a frame number from 0.")


def as_kit_image(image: np.ndarray, matrix: np.ndarray | None, as_uint8: bool) -> np.ndarray:
    """A uint8 frame as the kit's ``load_image`` returns it: corrected with the camera's colour ``matrix`` when
    one is given (float: as the kit's ``correct_color`` of image / 255, sRGB values unclipped), uint8 or float in
    [0, 1]."""
    if matrix is not None:
        return correct_colour(image, matrix, as_float=not as_uint8)
    return image if as_uint8 else image / 255.0


def _downscale(image: np.ndarray, factor: float) -> np.ndarray:
    """Shrink by ``factor`` with Pillow's bilinear filter to (int(W * (1 / f) + 0.5), ...), as the kit."""
    from PIL import Image

    if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not factor > 0:
        raise InputDataError(f"downscale_factor {shown(factor)} is invalid; expected a positive number.")
    height, width = image.shape[:2]
    scale = 1 / factor
    size = (max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5)))
    return np.asarray(Image.fromarray(image).resize(size, resample=Image.Resampling.BILINEAR))
