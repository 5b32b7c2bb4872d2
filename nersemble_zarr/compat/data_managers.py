"""The official data managers (``nersemble_benchmark.data.benchmark_data``) over a fetched folder or a store.

The first argument is either the folder the benchmark was fetched into (the official layout, videos decoded
with PyAV) or a converted store (every load reads only the chunks it needs). Timesteps are positions in the
sequence (0, 1, 2, ...), as the official managers count video frames; point cloud timesteps are the frame
indices in the ``frame_{timestep:05d}.pcd`` names. Matrices are plain numpy arrays (the official ones are
dreifus ``Pose``/``Intrinsics``, float32 numpy subclasses with the same values).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .. import catalogue, schema
from ..errors import InputDataError, StoreError, shown
from .constants import ASSETS, FLAME_TRACKING_CURRENT_VERSION, FLAME_TRACKING_VERSION_MAPPING


@dataclass
class CameraParams:
    """World-to-camera (4x4, OpenCV convention) and intrinsic (3x3) float32 matrices by camera serial."""

    world_2_cam: Dict[str, np.ndarray]
    intrinsics: Dict[str, np.ndarray]


@dataclass
class FlameTracking:
    """The FLAME 2023 tracking of one sequence, with the tracking file's shapes."""

    shape: np.ndarray               # (1, 300)
    expression: np.ndarray          # (T, 100)
    rotation: np.ndarray            # (T, 3)
    rotation_matrices: np.ndarray   # (T, 3, 3)
    translation: np.ndarray         # (T, 3)
    jaw: np.ndarray                 # (T, 3)
    frames: np.ndarray              # (T,)
    scale: np.ndarray               # (1, 1)
    neck: np.ndarray                # (T, 3)
    eyes: np.ndarray                # (T, 6)


@dataclass
class ImageKey:
    """One SVFR input image: a frame of one camera in one sequence."""

    sequence_name: str
    timestep: int
    serial: str

    def to_key(self) -> str:
        return f"{self.sequence_name}_{self.timestep:03d}_{self.serial}"


def is_store(location: str | os.PathLike) -> bool:
    """True when ``location`` is a zarr store (a folder with zarr.json, or a URL), False for a fetched folder."""
    text = os.fspath(location)
    return "://" in text or os.path.isfile(os.path.join(text, "zarr.json"))


class BaseDataManager:
    """Loads the assets of one participant of one benchmark, from a fetched folder or a converted store."""

    def __init__(self, benchmark_folder: str | os.PathLike, benchmark_type: str, participant_id: int) -> None:
        catalogue.check_participants(benchmark_type, [participant_id])
        self._benchmark_folder = os.fspath(benchmark_folder)
        self._location = f"{self._benchmark_folder}/{benchmark_type}"
        self._benchmark_type = benchmark_type
        self._participant_id = participant_id
        self._store = is_store(self._benchmark_folder)
        self._tree = None
        self._datasets: dict = {}

    # ---------------------------------------------------------------- assets
    def load_camera_calibration(self) -> CameraParams:
        """The participant's cameras (every serial in the calibration)."""
        if self._store:
            dataset = self._dataset(self._any_sequence())
            serials = [str(s) for s in dataset[schema.SERIAL].values]
            world_2_cam, intrinsics = dataset[schema.WORLD_2_CAM].values, dataset[schema.INTRINSICS].values
        else:
            from ..inputs.calibration import read_calibration

            cameras = read_calibration(Path(self.get_camera_calibration_path()))
            serials, world_2_cam, intrinsics = list(cameras.serials), cameras.world_2_cam, cameras.intrinsics
        # float32, as the official dreifus Pose and Intrinsics hold them
        return CameraParams(
            world_2_cam={s: world_2_cam[i].astype(np.float32) for i, s in enumerate(serials)},
            intrinsics={s: intrinsics[i].astype(np.float32) for i, s in enumerate(serials)},
        )

    def list_timesteps(self, sequence_name: str) -> List[int]:
        return list(range(self.get_n_timesteps(sequence_name)))

    def list_sequences(self) -> List[str]:
        """The sequences present (fetched or converted), sorted."""
        if self._store:
            from .. import store

            keys = store.sequence_keys(self._benchmark_folder)
            return sorted(s for b, p, s in keys if (b, p) == (self._benchmark_type, self._participant_id))
        folder = Path(self._location) / f"{self._participant_id:03d}" / "sequences"
        return sorted(entry.name for entry in folder.iterdir() if entry.is_dir()) if folder.is_dir() else []

    def list_serials(self, sequence_name: str) -> List[str]:
        """The cameras with a video of the sequence."""
        if self._store:
            dataset = self._dataset(sequence_name)
            if schema.IMAGES not in dataset:
                return []
            converted = dataset["images_converted"].values
            return [str(s) for s, ok in zip(dataset[schema.SERIAL].values, converted) if ok]
        folder = Path(self.get_images_path(sequence_name, "serial")).parent
        if not folder.is_dir():
            return []
        return sorted(file.stem.split("_")[1] for file in folder.iterdir() if file.name.startswith("cam_"))

    def get_n_timesteps(self, sequence_name: str) -> int:
        """Frames of the sequence (the store also knows it for test sequences without video)."""
        if self._store:
            return int(self._dataset(sequence_name).sizes[schema.TIMESTEP])
        from ..video import probe

        serials = self.list_serials(sequence_name)
        if not serials:
            raise InputDataError(f"No video of sequence {shown(sequence_name)} under {self._location}; fetch it first.")
        return probe(self.get_images_path(sequence_name, serials[0]), quick=True).n_frames

    def load_alpha_map(self, sequence_name: str, serial: str, timestep: int) -> np.ndarray:
        """The alpha map (H, W, 1) uint8 of one frame."""
        if self._store:
            return self._frames(sequence_name, serial, schema.ALPHA, slice(timestep, timestep + 1))[0][..., None]
        return self._decode(self.get_alpha_maps_path(sequence_name, serial), timestep, gray=True)[..., None]

    def load_image(self, sequence_name: str, serial: str, timestep: int, as_uint8: bool = False) -> np.ndarray:
        """One RGB frame (H, W, 3): float64 in [0, 1], or uint8 with ``as_uint8``."""
        if self._store:
            image = self._frames(sequence_name, serial, schema.IMAGES, slice(timestep, timestep + 1))[0]
        else:
            image = self._decode(self.get_images_path(sequence_name, serial), timestep)
        return image if as_uint8 else image / 255.0

    def load_all_images(
        self,
        sequence_name: str,
        serial: str,
        as_uint8: bool = False,
        every_nth_frame: Optional[int] = None,
        scale: Optional[float] = None,
    ) -> List[np.ndarray]:
        """Every (or every n-th) frame of one camera, optionally rescaled (bilinear, as the official)."""
        step = every_nth_frame or 1
        if self._store:
            images = list(self._frames(sequence_name, serial, schema.IMAGES, slice(None, None, step)))
        else:
            from ..video import iter_frames

            path = self._existing_video(self.get_images_path(sequence_name, serial))
            images = [frame for index, frame in enumerate(iter_frames(path)) if index % step == 0]
        if scale is not None:
            images = [resize_image(image, scale) for image in images]
        return images if as_uint8 else [image / 255.0 for image in images]

    def has_sequence(self, sequence_name: str) -> bool:
        return bool(self.list_serials(sequence_name))

    def has_video(self, sequence_name: str, serial: str) -> bool:
        if self._store:
            return serial in self.list_serials(sequence_name)
        return Path(self.get_images_path(sequence_name, serial)).exists()

    # ---------------------------------------------------------------- paths (the official layout)
    def get_camera_calibration_path(self) -> str:
        relative = ASSETS[self._benchmark_type]["per_person"]["calibration"].format(p_id=self._participant_id)
        return f"{self._location}/{relative}"

    def get_images_path(self, sequence_name: str, serial: str) -> str:
        return self._per_cam_path("images", sequence_name, serial)

    def get_alpha_maps_path(self, sequence_name: str, serial: str) -> str:
        return self._per_cam_path("alpha_maps", sequence_name, serial)

    def _per_cam_path(self, kind: str, sequence_name: str, serial: str) -> str:
        template = ASSETS[self._benchmark_type]["per_cam"][kind]
        return f"{self._location}/{template.format(p_id=self._participant_id, seq_name=sequence_name, serial=serial)}"

    # ---------------------------------------------------------------- reading
    def _dataset(self, sequence_name: str):
        """The store's Dataset of one sequence (cameras and tracking loaded, frames lazy), opened once."""
        from .. import store

        if sequence_name not in self._datasets:
            if self._tree is None:
                self._tree = store.open(self._benchmark_folder, dask=False)
            catalogue.check_safe_name(sequence_name, "sequence")
            self._datasets[sequence_name] = store.sequence(
                self._tree, self._benchmark_type, self._participant_id, sequence_name)
        return self._datasets[sequence_name]

    def _any_sequence(self) -> str:
        sequences = self.list_sequences()
        if not sequences:
            raise StoreError(
                f"The store {self._benchmark_folder} holds no {self._benchmark_type} sequence of participant "
                f"{self._participant_id}; convert one first.")
        return sequences[0]

    def _frames(self, sequence_name: str, serial: str, variable: str, timesteps: slice) -> np.ndarray:
        """Frames of one camera from the store, reading only the chunks of ``timesteps`` (positions)."""
        dataset = self._dataset(sequence_name)
        if serial not in self.list_serials(sequence_name):
            raise StoreError(
                f"The store has no {variable} of camera {shown(serial)} in {self._participant_id:03d}/{sequence_name}.")
        selected = dataset[variable].sel({schema.SERIAL: serial}).isel({schema.TIMESTEP: timesteps})
        if timesteps.stop is not None and selected.sizes[schema.TIMESTEP] == 0:
            raise StoreError(
                f"Timestep {timesteps.start} is out of range: {self._participant_id:03d}/{sequence_name} has "
                f"{dataset.sizes[schema.TIMESTEP]} frames.")
        return selected.values

    def _existing_video(self, path: str) -> str:
        if not Path(path).is_file():
            raise InputDataError(f"Could not find the video {path}; fetch it first.")
        return path

    def _decode(self, path: str, timestep: int, gray: bool = False) -> np.ndarray:
        """Frame ``timestep`` of a video, decoded with PyAV."""
        from ..video import iter_frames

        frame = next(iter_frames(self._existing_video(path), gray=gray, start=timestep, stop=timestep + 1), None)
        if frame is None:
            raise InputDataError(f"Timestep {timestep} is beyond the last frame of {path}.")
        return frame


def resize_image(image: np.ndarray, scale: float) -> np.ndarray:
    """Rescale an image by ``scale`` with bilinear filtering, sizes rounded half up (the official rule)."""
    from PIL import Image

    size = (int(image.shape[1] * scale + 0.5), int(image.shape[0] * scale + 0.5))
    return np.array(Image.fromarray(image).resize(size, resample=Image.Resampling.BILINEAR))


class NVSDataManager(BaseDataManager):
    """Assets of one NVS participant: frames, alpha maps, cameras and point clouds."""

    def __init__(self, benchmark_folder: str | os.PathLike, participant_id: int) -> None:
        super().__init__(benchmark_folder, "nvs", participant_id)

    def load_pointcloud(self, sequence_name: str, timestep: int):
        """Points, colours and normals (each (n, 3) float32) of the point cloud of frame ``timestep``."""
        if not self._store:
            from ..inputs.pointcloud import read_pointcloud

            path = Path(self.get_pointcloud_path(sequence_name, timestep))
            if not path.is_file():
                raise InputDataError(f"Could not find the point cloud {path}; fetch it first.")
            return read_pointcloud(path)
        dataset = self._dataset(sequence_name)
        if schema.POINT_COUNT not in dataset or timestep not in dataset[schema.POINTCLOUD_TIMESTEP].values:
            raise StoreError(
                f"The store has no point cloud of frame {timestep} of {self._participant_id:03d}/{sequence_name}.")
        at = {schema.POINTCLOUD_TIMESTEP: timestep}
        count = int(dataset[schema.POINT_COUNT].sel(at).values)
        return tuple(
            dataset[name].sel(at).isel({schema.POINT: slice(0, count)}).values
            for name in (schema.POINTS, schema.COLORS, schema.NORMALS))

    def get_pointcloud_path(self, sequence_name: str, timestep: int) -> str:
        template = ASSETS["nvs"]["per_timestep"]["pointclouds"]
        return f"{self._location}/{template.format(p_id=self._participant_id, seq_name=sequence_name, timestep=timestep)}"


class MonoFlameAvatarDataManager(BaseDataManager):
    """Assets of one mono FLAME avatar participant: frames, alpha maps, cameras and FLAME tracking."""

    def __init__(self, benchmark_folder: str | os.PathLike, participant_id: int) -> None:
        super().__init__(benchmark_folder, "mono_flame_avatar", participant_id)

    def load_flame_tracking(self, sequence_name: str, version: int = FLAME_TRACKING_CURRENT_VERSION) -> FlameTracking:
        """The FLAME tracking of a sequence; a store holds the one version it was converted from (normally 2)."""
        path = Path(self.get_flame_tracking_path(sequence_name, version))
        if self._store:
            dataset = self._dataset(sequence_name)
            source = str(dataset.attrs.get("tracking_source", ""))
            if not source.endswith("/" + path.name):
                raise StoreError(
                    f"The store holds the tracking of {self._participant_id:03d}/{sequence_name} from "
                    f"{shown(source.rsplit('/', 1)[-1] or 'no file')}, not version {version} ({path.name}); "
                    "read that version from the fetched folder.")
            return _tracking_from_dataset(dataset)
        from ..inputs.tracking import read_tracking

        if not path.is_file():
            raise InputDataError(f"Could not find the FLAME tracking {path}; fetch it first.")
        return FlameTracking(**read_tracking(path))

    def get_flame_tracking_path(self, sequence_name: str, version: int = FLAME_TRACKING_CURRENT_VERSION) -> str:
        if version not in FLAME_TRACKING_VERSION_MAPPING:
            raise InputDataError(f"Unknown FLAME tracking version {shown(version)}; expected 1 or 2.")
        template = ASSETS["mono_flame_avatar"]["per_sequence"][FLAME_TRACKING_VERSION_MAPPING[version]]
        return f"{self._location}/{template.format(p_id=self._participant_id, seq_name=sequence_name)}"


def _tracking_from_dataset(dataset) -> FlameTracking:
    """FlameTracking from a sequence Dataset's coordinates, with the tracking file's shapes."""
    if "expression" not in dataset.coords:
        raise StoreError(f"The sequence {dataset.attrs.get('sequence')} in the store has no FLAME tracking.")
    values = {name: np.asarray(dataset[name].values) for name in
              ("expression", "rotation", "rotation_matrices", "translation", "jaw", "neck", "eyes")}
    return FlameTracking(
        shape=np.asarray(dataset["shape"].values)[None],
        scale=np.asarray(dataset["scale"].values).reshape(1, 1),
        frames=np.asarray(dataset[schema.TIMESTEP].values),
        **values,
    )

