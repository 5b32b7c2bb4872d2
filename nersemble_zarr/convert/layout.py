"""The xarray Dataset skeleton of one sequence: coordinates, attributes and chunked image arrays.

Writing the skeleton with ``compute=False`` stores metadata and coordinates only; the frames are written
later, camera by camera, into the arrays it created.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask.array as da
import numpy as np
import xarray as xr

from typing import TYPE_CHECKING

from .. import catalogue, schema
from ..frame_codecs import FrameCodec
from ..levels.layout import INTRINSICS_RULE, PIXEL_CENTRES
from ..sources.dataset import FPS as DATASET_FPS
from ..sources.dataset import background_path
from .plan import SequenceSource

if TYPE_CHECKING:
    from .dataset import DatasetInputs

DATASET_RESAMPLING = (
    "area average of the decoded frame's pixels (box of level x level, in sRGB, rounded), written without storing "
    "full resolution; rows/columns that do not fill a box are cropped at the bottom/right"
)
COLOUR_ORDER = (
    "area-averaged to the level first, then colour-corrected with the camera's colour_correction matrix "
    "(nersemble_zarr.colour.correct_colour_at_level): the official load_image's order"
)

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
    coords: dict = {
        schema.SERIAL: (schema.SERIAL, np.array(cams.serials, dtype=object)),
        schema.TIMESTEP: (schema.TIMESTEP, source.timesteps),
        schema.WORLD_2_CAM: ((schema.SERIAL, schema.MAT4_ROW, schema.MAT4_COL), cams.world_2_cam),
        schema.INTRINSICS: ((schema.SERIAL, schema.MAT3_ROW, schema.MAT3_COL), cams.intrinsics),
    }
    if source.dataset is None:  # the benchmarks' hold-out cameras; the dataset has none
        splits = [catalogue.split_of(source.benchmark, serial) for serial in cams.serials]
        coords[schema.SPLIT] = (schema.SERIAL, np.array(splits, dtype=object))
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
        "fps": DATASET_FPS if source.dataset is not None else catalogue.SPECS[source.benchmark].fps,
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
    if source.dataset is not None:
        _add_dataset_parts(source, source.dataset, codec, coords, data_vars, encoding, attrs)
    dataset = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    dataset[schema.SERIAL].attrs["description"] = "camera serial number"
    if schema.SPLIT in dataset.coords:
        dataset[schema.SPLIT].attrs["description"] = "train: input camera; test: hold-out camera of the benchmark"
    return dataset, encoding


def _add_dataset_parts(source: SequenceSource, inputs: "DatasetInputs", codec: FrameCodec, coords: dict,
                       data_vars: dict, encoding: dict, attrs: dict) -> None:
    """A dataset sequence's additions: the BACKGROUND pictures, the colour matrices, the calibration texts, whether
    the frames are corrected and, at a level, how they were resampled."""
    serials = source.cameras.serials
    if inputs.backgrounds:
        tail = (source.height, source.width, 3)
        data_vars[schema.BACKGROUND] = xr.Variable(
            (schema.SERIAL, schema.Y, schema.X, schema.CHANNEL),
            da.zeros((len(serials),) + tail, dtype=np.uint8, chunks=(1,) + tail),
            attrs={"source": f"{schema.DATASET}/{background_path(source.participant, '{serial}')}",
                   "description": "the empty studio seen by each camera, at the frames' level and correction",
                   "units": "8-bit intensity, 0-255"},
        )
        encoding[schema.BACKGROUND] = {"chunks": (1,) + tail, "fill_value": 0, **codec.zarr_encoding()}
        flag = schema.converted_flag(schema.BACKGROUND)
        coords[flag] = (schema.SERIAL, np.zeros(len(serials), dtype=bool))
        encoding[flag] = {"chunks": (1,)}
    if inputs.colour_matrices:
        terms = next(iter(inputs.colour_matrices.values())).shape[1]
        matrices = np.full((len(serials), 3, terms), np.nan)
        for index, serial in enumerate(serials):
            if serial in inputs.colour_matrices and inputs.colour_matrices[serial].shape[1] == terms:
                matrices[index] = inputs.colour_matrices[serial]
        coords[schema.COLOUR_CORRECTION] = ((schema.SERIAL, schema.COLOUR_ROW, schema.COLOUR_TERM), matrices)
        attrs[schema.COLOUR_CALIBRATION_JSON_ATTR] = inputs.colour_calibration_json
        attrs["colour_calibration_source"] = inputs.colour_calibration_source
    attrs["calibration_source"] = inputs.calibration_source
    attrs[schema.CALIBRATION_JSON_ATTR] = inputs.calibration_json
    attrs[schema.COLOUR_CORRECTED_ATTR] = inputs.colour_correct
    attrs["colour_correction_order"] = COLOUR_ORDER if inputs.colour_correct else "not corrected: as decoded"
    attrs["full_height"], attrs["full_width"] = inputs.full_height, inputs.full_width
    if inputs.level > 1:
        attrs.update({
            schema.LEVEL_ATTR: inputs.level,
            "cropped_rows_bottom": int(inputs.full_height - source.height * inputs.level),
            "cropped_columns_right": int(inputs.full_width - source.width * inputs.level),
            "pixel_centres": PIXEL_CENTRES,
            "resampling": DATASET_RESAMPLING,
            "intrinsics_rule": INTRINSICS_RULE,
        })


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
    if source.dataset is not None:
        attrs["description"] = "RGB frames as recorded (studio background included)"
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
