"""Log a sequence of the store to a Rerun recording: cameras, frames on the ``timestep`` timeline, FLAME, point clouds.

Entity paths (``SERIAL`` is the camera's serial, ``KEY`` an SVFR image key):

* ``world/cameras/SERIAL``: static pose (camera to world, the inverse of ``world_2_cam``) and pinhole (the
  store's intrinsics at the level shown, OpenCV axes declared as RDF); train cameras blue, hold-out red (the
  v2 dataset has no hold-out: every camera blue, no ``split`` value);
* ``world/cameras/SERIAL/image``: the frames, JPEG (or PNG) encoded, at each timestep;
* ``world/cameras/SERIAL/alpha``: the alpha map as a segmentation (class 1 where alpha >= 128);
* ``world/flame/mesh`` (faces static, vertices per timestep) and ``world/flame/landmarks``;
* ``world/pointcloud``: each point cloud at its timestep;
* ``svfr/PARTICIPANT/KEY``: each SVFR image.

Frames are read and encoded one at a time, so memory stays that of one frame whatever the sequence length.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from typing import Any, Callable

import numpy as np
import xarray as xr

from .. import schema, storage
from ..chunk_reader import stored_frames
from ..errors import ConfigError, StoreError
from ..progress import Progress, advance, set_total
from ..store import GROUP_ENCODING, STORE_ENCODING
from .rerun_sdk import rerun
from .selection import select_cameras, select_timesteps

TIMELINE = "timestep"
CAMERAS = "world/cameras"
MESH, LANDMARKS, POINTCLOUD = "world/flame/mesh", "world/flame/landmarks", "world/pointcloud"
TRAIN_COLOUR, HOLD_OUT_COLOUR = (70, 130, 240), (235, 50, 50)
MESH_COLOUR = (205, 180, 160)
MASK_THRESHOLD = 128
IMAGE_FORMATS = ("jpeg", "png")


def camera_path(serial: str) -> str:
    """Entity path of a camera (its pose and pinhole)."""
    return f"{CAMERAS}/{serial}"


def log_sequence(
    dataset: xr.Dataset,
    recording: Any = None,
    *,
    level: int = 1,
    timesteps: slice | Iterable[int] | None = None,
    cameras: Iterable[str] | None = None,
    image_format: str = "jpeg",
    jpeg_quality: int = 90,
    flame_dir: str | os.PathLike | None = None,
    layout: bool = True,
    progress: Progress | None = None,
) -> None:
    """Log a sequence Dataset (from ``nersemble_zarr.store.sequence``) to a Rerun ``recording`` (default:
    Rerun's global one).

    ``level`` shows the frames and intrinsics of a resolution level written by ``downsample`` (or by ``convert
    -b dataset --level``; a dataset sequence opened at that level is shown as it is); ``timesteps``
    (a slice of original frame indices, or a list of them) and ``cameras`` (serials) narrow what is shown.
    FLAME meshes are the stored ones, or with ``flame_dir`` evaluated with that model when none are stored.
    ``layout`` sends a blueprint: the 3D scene beside one 2D view per camera with frames.
    ``progress`` is told the number of frames and called as each camera's frame is logged.
    """
    rr = rerun()
    if image_format not in IMAGE_FORMATS:
        raise ConfigError(f"Image format {image_format!r} is not one of {', '.join(IMAGE_FORMATS)}.")
    chosen = select_timesteps(dataset, timesteps)
    serials = select_cameras(dataset, cameras)
    cameras_dataset, readers = _frames_at_level(dataset, level)
    log = _logger(rr, recording)
    _log_cameras(rr, log, cameras_dataset, serials)
    with_frames = [serial for serial in serials if serial in readers.get(schema.IMAGES, {})]
    if layout:
        rr.send_blueprint(_blueprint(with_frames), recording=recording)
    set_total(progress, len(chosen) * len(with_frames))
    mesh = _mesh_source(dataset, flame_dir)
    if mesh is not None:
        log(MESH, rr.Mesh3D.from_fields(triangle_indices=mesh.faces, albedo_factor=MESH_COLOUR), static=True)
    clouds = _pointcloud_indices(dataset)
    encode = _encoder(rr, image_format, jpeg_quality)
    for timestep in chosen:
        rr.set_time(TIMELINE, sequence=int(timestep), recording=recording)
        for serial in with_frames:
            log(f"{camera_path(serial)}/image", encode(readers[schema.IMAGES][serial](int(timestep))))
            alpha = readers.get(schema.ALPHA, {}).get(serial)
            if alpha is not None:
                mask = (alpha(int(timestep)) >= MASK_THRESHOLD).astype(np.uint8)
                log(f"{camera_path(serial)}/alpha", rr.SegmentationImage(mask, opacity=0.2))
            advance(progress, 1)
        if mesh is not None:
            mesh.log(rr, log, int(timestep))
        if int(timestep) in clouds:
            _log_pointcloud(rr, log, dataset, clouds[int(timestep)])


def log_svfr(dataset: xr.Dataset, recording: Any = None, *, image_format: str = "png",
             jpeg_quality: int = 90, progress: Progress | None = None) -> None:
    """Log every converted image of an SVFR Dataset (``nersemble_zarr.store.svfr_images``) at
    ``svfr/PARTICIPANT/KEY``, KEY being the image's ``{sequence}_{timestep}_{serial}`` (escaped as an entity
    path part; also logged as the value ``key``)."""
    from ..store import svfr_image

    rr = rerun()
    log = _logger(rr, recording)
    encode = _encoder(rr, image_format, jpeg_quality)
    participant = dataset.attrs.get(schema.PARTICIPANT_ATTR)
    flag = schema.converted_flag(schema.IMAGES)
    done = dataset[flag].values if flag in dataset.coords else np.ones(dataset.sizes[schema.IMAGE], dtype=bool)
    keys = list(zip(dataset[schema.SVFR_SEQUENCE].values, dataset[schema.TIMESTEP].values,
                    dataset[schema.SERIAL].values))
    set_total(progress, int(np.count_nonzero(done)))
    for index, (sequence, timestep, serial) in enumerate(keys):
        if not done[index]:
            continue
        key = f"{sequence}_{int(timestep)}_{serial}"
        image = svfr_image(dataset, str(sequence), int(timestep), str(serial))
        log(f"svfr/{participant}/{rr.escape_entity_path_part(key)}", encode(image), rr.AnyValues(key=key), static=True)
        advance(progress, 1)


# ---------------------------------------------------------------- cameras and frames
def _logger(rr, recording) -> Callable[..., None]:
    def log(path: str, *archetypes, static: bool = False) -> None:
        rr.log(path, *archetypes, static=static, recording=recording)

    return log


def _log_cameras(rr, log, dataset: xr.Dataset, serials: list[str]) -> None:
    height, width = int(dataset.attrs[schema.HEIGHT_ATTR]), int(dataset.attrs[schema.WIDTH_ATTR])
    log(CAMERAS, rr.AnnotationContext([(0, "background", (0, 0, 0, 0)),
                                       (1, f"alpha >= {MASK_THRESHOLD}", (40, 220, 90, 255))]), static=True)
    for serial in serials:
        camera = dataset.sel({schema.SERIAL: serial})
        cam_2_world = np.linalg.inv(np.asarray(camera[schema.WORLD_2_CAM].values, dtype=np.float64))
        split = str(camera[schema.SPLIT].values) if schema.SPLIT in camera.coords else None  # the dataset: none
        log(camera_path(serial),
            rr.Transform3D(translation=cam_2_world[:3, 3], mat3x3=cam_2_world[:3, :3]),
            rr.Pinhole(image_from_camera=np.asarray(camera[schema.INTRINSICS].values, dtype=np.float64),
                       resolution=[width, height], camera_xyz=rr.ViewCoordinates.RDF,
                       color=HOLD_OUT_COLOUR if split == "test" else TRAIN_COLOUR, image_plane_distance=0.1),
            *([rr.AnyValues(split=split)] if split is not None else []),
            static=True)


def _blueprint(serials: list[str]):
    """The 3D scene (cameras, mesh, points) on the left, a grid of the cameras' frames with their alpha on the right."""
    import rerun.blueprint as rrb

    scene = rrb.Spatial3DView(origin="/world", name="3D")
    if not serials:
        return rrb.Blueprint(scene, collapse_panels=False)
    frames = rrb.Grid(*[rrb.Spatial2DView(origin=camera_path(serial), name=serial) for serial in serials])
    return rrb.Blueprint(rrb.Horizontal(scene, frames, column_shares=[3, 2]), collapse_panels=False)


def _frames_at_level(dataset: xr.Dataset, level: int) -> tuple[xr.Dataset, dict[str, dict[str, Callable]]]:
    """The cameras Dataset of ``level`` and, per frame variable, a reader ``timestep -> frame`` per camera
    whose frames are written at that level."""
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level < 1:
        raise ConfigError(f"Resolution level {level!r} is invalid; expected 1 (full resolution) or a level >= 2.")
    source, group = dataset.encoding.get(STORE_ENCODING), dataset.encoding.get(GROUP_ENCODING)
    if level == int(dataset.attrs.get(schema.LEVEL_ATTR, 1)):  # the sequence as opened (a dataset's: at a level)
        shown = dataset
    else:
        if source is None:
            raise ConfigError("A level above 1 is read from the store; open the sequence with "
                              "nersemble_zarr.store.sequence.")
        group = schema.level_group(level, *_sequence_key(dataset))
        if not storage.group_exists(source, group):
            raise StoreError(f"{source} has no resolution level {level} of {schema.sequence_group_of(dataset.attrs)}; "
                             f"write it with `nersemble-zarr downsample {source} --levels {level}`.")
        shown = storage.open_dataset(source, group, dask=False)
    readers = {}
    for variable in (schema.IMAGES, schema.ALPHA):
        if variable not in shown:
            continue
        written = storage.written_cameras(shown, variable)
        serials = [str(s) for s, done in zip(shown[schema.SERIAL].values, written) if done]
        readers[variable] = {serial: _reader(shown, source, group, variable, serial) for serial in serials}
    return shown, readers


def _sequence_key(dataset: xr.Dataset) -> tuple[str, int, str]:
    attrs = dataset.attrs
    return attrs[schema.BENCHMARK_ATTR], int(attrs[schema.PARTICIPANT_ATTR]), attrs[schema.SEQUENCE_ATTR]


def _reader(dataset: xr.Dataset, source: str | None, group: str | None, variable: str,
            serial: str) -> Callable[[int], np.ndarray]:
    """``timestep -> frame`` of one camera: straight from the shard when the store is known, else via xarray."""
    if source is not None and group is not None:
        frames = stored_frames(source, group, variable)
        return lambda timestep: frames.read(serial, timestep)
    return lambda timestep: dataset[variable].sel({schema.SERIAL: serial, schema.TIMESTEP: timestep}).values


def _encoder(rr, image_format: str, jpeg_quality: int) -> Callable[[np.ndarray], Any]:
    """A function turning an (H, W, 3 or 4) or (H, W) uint8 frame into an ``rr.EncodedImage``."""
    from PIL import Image

    def encode(frame: np.ndarray):
        picture = Image.fromarray(np.ascontiguousarray(frame))
        kind = "jpeg" if image_format == "jpeg" and picture.mode in ("RGB", "L") else "png"
        buffer = io.BytesIO()
        if kind == "jpeg":
            picture.save(buffer, format="JPEG", quality=jpeg_quality)
        else:
            picture.save(buffer, format="PNG", compress_level=1)
        return rr.EncodedImage(contents=buffer.getvalue(), media_type=f"image/{kind}")

    return encode


# ---------------------------------------------------------------- FLAME and point clouds
class _Mesh:
    """The FLAME meshes of a sequence, stored or evaluated with a model, one timestep at a time."""

    def __init__(self, dataset: xr.Dataset, faces: np.ndarray, model: Any = None) -> None:
        self.dataset, self.faces, self.model = dataset, np.asarray(faces, dtype=np.uint32), model
        self.index = {int(t): i for i, t in enumerate(dataset[schema.TIMESTEP].values)}

    def log(self, rr, log, timestep: int) -> None:
        one = self.dataset.isel({schema.TIMESTEP: [self.index[timestep]]})
        if self.model is None:
            vertices = np.asarray(one[schema.VERTICES].values[0])
            landmarks = np.asarray(one[schema.LANDMARKS].values[0]) if schema.LANDMARKS in one else None
        else:
            from ..flame.sequence import flame_parameters

            meshes = self.model.evaluate(flame_parameters(one), landmarks=self.model.n_landmarks > 0)
            vertices, landmarks = meshes.vertices[0], meshes.landmarks[0] if self.model.n_landmarks else None
        if np.isnan(vertices).any():  # not written yet by an interrupted `meshes` run
            return
        log(MESH, rr.Mesh3D.from_fields(vertex_positions=vertices, vertex_normals=vertex_normals(vertices, self.faces)))
        if landmarks is not None:
            log(LANDMARKS, rr.Points3D(landmarks, radii=0.002, colors=(250, 200, 0)))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit vertex normals (V, 3) float32: the area-weighted sum of the normals of the faces around each vertex."""
    corners = vertices[faces.astype(np.int64)]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices, dtype=np.float64)
    for corner in range(3):
        np.add.at(normals, faces[:, corner].astype(np.int64), face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.where(length > 0, length, 1)).astype(np.float32)


def _mesh_source(dataset: xr.Dataset, flame_dir: str | os.PathLike | None) -> _Mesh | None:
    if schema.VERTICES in dataset and schema.FACES in dataset:
        return _Mesh(dataset, dataset[schema.FACES].values)
    if flame_dir is None or "expression" not in dataset.coords:
        return None
    from ..flame.lbs import FlameModel

    model = FlameModel.load(flame_dir, device="cpu")
    return _Mesh(dataset, model.faces, model)


def _pointcloud_indices(dataset: xr.Dataset) -> dict[int, int]:
    if schema.POINTS not in dataset:
        return {}
    return {int(t): i for i, t in enumerate(dataset[schema.POINTCLOUD_TIMESTEP].values)}


def _log_pointcloud(rr, log, dataset: xr.Dataset, index: int) -> None:
    cloud = dataset.isel({schema.POINTCLOUD_TIMESTEP: index})
    count = int(cloud[schema.POINT_COUNT].values)
    points = np.asarray(cloud[schema.POINTS].values[:count])
    colours = None
    if schema.COLORS in cloud:
        colours = (np.clip(np.asarray(cloud[schema.COLORS].values[:count]), 0, 1) * 255).round().astype(np.uint8)
    log(POINTCLOUD, rr.Points3D(points, colors=colours, radii=0.001))
