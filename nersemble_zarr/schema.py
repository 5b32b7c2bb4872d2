"""Names, dimensions and layout of the store: the contract between convert, FLAME, export and readers.

Every module that reads or writes the store takes its names from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FORMAT_VERSION = 1
FORMAT_ATTR = "nersemble_zarr_format"
CREATED_BY_ATTR = "created_by"
BENCHMARKS_ATTR = "benchmarks"  # root attribute: the benchmarks converted into the store

# ---------------------------------------------------------------- completion flags and group attributes
CONVERTED_SUFFIX = "_converted"  # (serial,) bool coordinate: that camera's frames are completely written
CONVERTED_ATTR = "converted"  # group attribute: every camera of the sequence is written
# Group attribute set once the skeleton (metadata, coordinates, point clouds) is completely written; a group
# without it (or CONVERTED_ATTR) is what a killed run left half-written, and a rerun writes it again.
SKELETON_ATTR = "skeleton_complete"
# Group attributes naming the sequence a group holds (a resolution level keeps its sequence's) and its frame size.
BENCHMARK_ATTR, PARTICIPANT_ATTR, SEQUENCE_ATTR = "benchmark", "participant", "sequence"
HEIGHT_ATTR, WIDTH_ATTR = "height", "width"
FRAME_CODEC_ATTR = "frame_codec"  # group attribute: name of the frame codec of images and alpha
VIDEO_SERIALS_ATTR = "video_serials"  # group attribute: the cameras that have video
LEVEL_ATTR = "level"  # attribute of a resolution level group: its downsampling factor
VERTICES_COMPLETE_ATTR = "vertices_complete"  # group attribute: every FLAME mesh of the sequence is stored
VERTICES_MODEL_ATTR = "vertices_flame_model"  # group attribute: the model that made the stored meshes
COLOUR_CORRECTED_ATTR = "colour_corrected"  # group attribute (bool): the stored frames are colour-corrected
# Group attributes of a dataset sequence: its participant's camera_params.json and color_calibration.json, verbatim
# (key order included: exports write them back byte for byte).
CALIBRATION_JSON_ATTR, COLOUR_CALIBRATION_JSON_ATTR = "calibration_json", "colour_calibration_json"


def converted_flag(variable: str) -> str:
    """Name of the per-camera completion coordinate of a frame variable, e.g. ``images_converted``."""
    return variable + CONVERTED_SUFFIX


# ---------------------------------------------------------------- dimensions
SERIAL = "serial"
TIMESTEP = "timestep"
Y = "y"
X = "x"
CHANNEL = "channel"
MAT4_ROW, MAT4_COL = "mat4_row", "mat4_col"
MAT3_ROW, MAT3_COL = "mat3_row", "mat3_col"
XYZ = "xyz"
SHAPE_PARAM = "shape_param"
EXPRESSION_PARAM = "expression_param"
EYES_PARAM = "eyes_param"
VERTEX = "vertex"
LANDMARK = "landmark"
FACE = "face"
CORNER = "corner"
POINTCLOUD_TIMESTEP = "pointcloud_timestep"
POINT = "point"
COLOUR_ROW, COLOUR_TERM = "colour_row", "colour_term"  # a colour correction matrix: 3 rows x terms
IMAGE = "image"  # SVFR: one image key (sequence, timestep, serial)

# ---------------------------------------------------------------- data variables
IMAGES = "images"            # (serial, timestep, y, x, channel) uint8, RGB
ALPHA = "alpha"              # (serial, timestep, y, x) uint8
BACKGROUND = "background"    # (serial, y, x, channel) uint8, RGB: the empty studio (the NeRSemble v2 dataset)
VERTICES = "vertices"        # (timestep, vertex, xyz) float32, world space
LANDMARKS = "landmarks"      # (timestep, landmark, xyz) float32, world space
FACES = "faces"              # (face, corner) int32
POINTS = "pointcloud_points"     # (pointcloud_timestep, point, xyz) float32, padded
COLORS = "pointcloud_colors"     # (pointcloud_timestep, point, xyz) float32 in [0, 1], padded
NORMALS = "pointcloud_normals"   # (pointcloud_timestep, point, xyz) float32, padded
POINT_COUNT = "pointcloud_count"  # (pointcloud_timestep,) int64: valid rows of the padded arrays

# ---------------------------------------------------------------- coordinates
SVFR_SEQUENCE = "sequence"   # (image,) str: the SVFR image's sequence (with timestep and serial along image)
IMAGE_HEIGHT, IMAGE_WIDTH = "image_height", "image_width"  # (image,) int64: an SVFR image's own size
SPLIT = "split"              # (serial,) "train" | "test"
WORLD_2_CAM = "world_2_cam"  # (serial, mat4_row, mat4_col) float64, OpenCV world-to-camera
INTRINSICS = "intrinsics"    # (serial, mat3_row, mat3_col) float64
COLOUR_CORRECTION = "colour_correction"  # (serial, colour_row, colour_term) float64: color_calibration.json

# FLAME tracking (mono benchmark), name -> dims; keys equal the npz keys of the tracking file.
FLAME_TIMESTEP_PARAMS: dict[str, tuple[str, ...]] = {
    "expression": (TIMESTEP, EXPRESSION_PARAM),
    "rotation": (TIMESTEP, XYZ),
    "rotation_matrices": (TIMESTEP, MAT3_ROW, MAT3_COL),
    "translation": (TIMESTEP, XYZ),
    "jaw": (TIMESTEP, XYZ),
    "neck": (TIMESTEP, XYZ),
    "eyes": (TIMESTEP, EYES_PARAM),
}
FLAME_STATIC_PARAMS: dict[str, tuple[str, ...]] = {
    "shape": (SHAPE_PARAM,),  # stored from the npz's (1, 300)
    "scale": (),              # stored from the npz's (1, 1)
}
FLAME_N_SHAPE = 300
FLAME_N_EXPRESSION = 100


DATASET = "dataset"  # the first part of a NeRSemble v2 dataset sequence's group path, as a benchmark's name is


def sequence_group(benchmark: str, participant: int, sequence: str) -> str:
    """Path of one sequence's Dataset inside the store, e.g. ``nvs/388/GLASSES``."""
    return f"{benchmark}/{int(participant)}/{sequence}"


def sequence_group_of(attrs: Mapping[str, Any]) -> str:
    """Path of the full-resolution sequence that a group's attributes name, e.g. ``nvs/388/GLASSES``."""
    return sequence_group(attrs[BENCHMARK_ATTR], attrs[PARTICIPANT_ATTR], attrs[SEQUENCE_ATTR])


def svfr_group(participant: int) -> str:
    """Path of one participant's SVFR images inside the store, e.g. ``svfr/17``."""
    return f"svfr/{int(participant)}"


# ---------------------------------------------------------------- resolution levels
LEVEL_PREFIX = "level_"  # level s > 1 of every sequence lives under the root group level_{s}/


def level_group(level: int, benchmark: str, participant: int, sequence: str) -> str:
    """Path of a sequence at resolution level ``level`` (1 = full resolution, the sequence group itself);
    level s > 1 mirrors the tree under ``level_{s}/``, e.g. ``level_2/nvs/388/GLASSES``."""
    path = sequence_group(benchmark, participant, sequence)
    return path if int(level) == 1 else f"{LEVEL_PREFIX}{int(level)}/{path}"
