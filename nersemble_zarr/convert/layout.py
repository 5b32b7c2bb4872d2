"""The xarray Dataset skeleton of one sequence: coordinates, attributes and chunked image arrays.

Writing the skeleton with ``compute=False`` stores metadata and coordinates only; the frames are written
later, camera by camera, into the arrays it created.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask.array as da
import numpy as np
import xarray as xr

from .. import catalogue, schema
from ..frame_codecs import FrameCodec
from .plan import SequenceSource

@dataclass(frozen=True)
class Chunking:
    """Frames per zarr chunk (the unit of a random read) and per shard (the unit of a file and a write)."""

    frames_per_chunk: int = 1
    frames_per_shard: int = 32

    def shard_frames(self, n_frames: int) -> int:
        """Frames per shard for a sequence: a multiple of the chunk, at most the (rounded-up) sequence."""
        per_shard = max(self.frames_per_shard // self.frames_per_chunk, 1) * self.frames_per_chunk
        needed = -(-n_frames // self.frames_per_chunk) * self.frames_per_chunk
        return min(per_shard, needed)


def sequence_skeleton(source: SequenceSource, codec: FrameCodec, chunking: Chunking) -> tuple[xr.Dataset, dict]:
    """The Dataset to write for a sequence (frames as lazy zeros) and its zarr encoding."""
    cams = source.cameras
    spec = catalogue.SPECS[source.benchmark]
    splits = [catalogue.split_of(source.benchmark, serial) for serial in cams.serials]
    coords: dict = {
        schema.SERIAL: (schema.SERIAL, np.array(cams.serials, dtype=object)),
        schema.TIMESTEP: (schema.TIMESTEP, source.timesteps),
        schema.SPLIT: (schema.SERIAL, np.array(splits, dtype=object)),
        schema.WORLD_2_CAM: ((schema.SERIAL, schema.MAT4_ROW, schema.MAT4_COL), cams.world_2_cam),
        schema.INTRINSICS: ((schema.SERIAL, schema.MAT3_ROW, schema.MAT3_COL), cams.intrinsics),
    }
    if source.tracking is not None:
        coords.update(_tracking_coords(source.tracking))
    encoding: dict = {}
    data_vars: dict = {}
    frame_vars = [schema.IMAGES] + ([schema.ALPHA] if source.has_alpha else [])
    if source.video_serials:
        shard = chunking.shard_frames(len(source.timesteps))
        for name in frame_vars:
            tail = (source.height, source.width, 3) if name == schema.IMAGES else (source.height, source.width)
            dims = (schema.SERIAL, schema.TIMESTEP, schema.Y, schema.X) + ((schema.CHANNEL,) if name == schema.IMAGES else ())
            shape = (len(cams.serials), len(source.timesteps)) + tail
            data_vars[name] = xr.Variable(
                dims, da.zeros(shape, dtype=np.uint8, chunks=(1, shard) + tail), attrs=_frame_attrs(source, name)
            )
            encoding[name] = {
                "chunks": (1, chunking.frames_per_chunk) + tail,
                "shards": (1, shard) + tail,
                "fill_value": 0,
                **codec.zarr_encoding(),
            }
            flag = schema.converted_flag(name)
            coords[flag] = (schema.SERIAL, np.zeros(len(cams.serials), dtype=bool))
            encoding[flag] = {"chunks": (1,)}
    data_vars.update(_pointcloud_vars(source))
    attrs = {
        schema.BENCHMARK_ATTR: source.benchmark,
        schema.PARTICIPANT_ATTR: source.participant,
        schema.SEQUENCE_ATTR: source.sequence,
        "fps": spec.fps,
        schema.HEIGHT_ATTR: source.height,
        schema.WIDTH_ATTR: source.width,
        "camera_convention": "OpenCV world-to-camera: x right, y down, z forward",
        "world_units": "as in camera_params.json (metres)",
        "calibration_source": f"{source.benchmark}/{catalogue.calibration_path(source.participant)}",
        "timestep_meaning": "original frame index of the recording",
        schema.FRAME_CODEC_ATTR: codec.name,
        schema.VIDEO_SERIALS_ATTR: list(source.video_serials),
    }
    if source.tracking_file:
        attrs["tracking_source"] = f"{source.relative_prefix}/tracking/{source.tracking_file}"
    dataset = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    dataset[schema.SERIAL].attrs["description"] = "camera serial number"
    dataset[schema.SPLIT].attrs["description"] = "train: input camera; test: hold-out camera of the benchmark"
    return dataset, encoding


def _frame_attrs(source: SequenceSource, name: str) -> dict:
    kind = "images" if name == schema.IMAGES else "alpha_maps"
    attrs = {
        "source": f"{source.relative_prefix}/{kind}/cam_{{serial}}.mp4",
        "units": "8-bit intensity, 0-255",
        "missing": "frames of cameras whose <variable>_converted is False read as the fill value 0",
    }
    attrs["description"] = (
        "RGB frames with the background removed" if name == schema.IMAGES else "foreground alpha (first channel of the alpha video)"
    )
    return attrs


def _tracking_coords(tracking: dict[str, np.ndarray]) -> dict:
    """The tracking arrays as coordinates; they are float32 already (inputs.tracking checked the cast)."""
    coords = {name: (dims, tracking[name]) for name, dims in schema.FLAME_TIMESTEP_PARAMS.items()}
    coords["shape"] = (schema.FLAME_STATIC_PARAMS["shape"], tracking["shape"].reshape(-1))
    coords["scale"] = ((), tracking["scale"].reshape(()))
    return coords


def _pointcloud_vars(source: SequenceSource) -> dict:
    if not source.pointcloud_files:
        return {}
    from ..inputs.pointcloud import read_pointcloud

    clouds = [read_pointcloud(path) for _, path in source.pointcloud_files]
    n_max = max(len(points) for points, _, _ in clouds)
    padded = np.zeros((3, len(clouds), n_max, 3), dtype=np.float32)
    for index, arrays in enumerate(clouds):
        for kind, array in enumerate(arrays):
            padded[kind, index, : len(array)] = array
    dims = (schema.POINTCLOUD_TIMESTEP, schema.POINT, schema.XYZ)
    source_attr = {"source": f"{source.relative_prefix}/pointclouds/frame_{{pointcloud_timestep:05d}}.pcd"}
    return {
        schema.POINTS: (dims, padded[0], source_attr),
        schema.COLORS: (dims, padded[1], source_attr),
        schema.NORMALS: (dims, padded[2], source_attr),
        schema.POINT_COUNT: ((schema.POINTCLOUD_TIMESTEP,), np.array([len(c[0]) for c in clouds], dtype=np.int64)),
        schema.POINTCLOUD_TIMESTEP: ((schema.POINTCLOUD_TIMESTEP,), np.array([t for t, _ in source.pointcloud_files])),
    }
