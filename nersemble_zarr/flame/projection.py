"""Project world-space points (FLAME vertices or landmarks) into the store's OpenCV cameras."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .. import schema
from ..cameras import project_opencv

UV = "uv"  # dimension of pixel coordinates: u (column, x right), v (row, y down)


def project_points(points: xr.DataArray, world_2_cam: xr.DataArray, intrinsics: xr.DataArray) -> xr.Dataset:
    """Pixel coordinates ``pixels`` (..., uv) and camera depth ``depth`` of world points in every camera.

    ``points`` has an ``xyz`` dimension (e.g. (timestep, vertex, xyz)); ``world_2_cam``
    (serial, mat4_row, mat4_col) and ``intrinsics`` (serial, mat3_row, mat3_col) are the store's
    OpenCV world-to-camera extrinsics and intrinsics. The result has dims (serial, timestep, vertex)
    (+ uv), broadcast over cameras and timesteps, and stays lazy when any input is a dask array.
    Depth is the z coordinate in the camera frame (positive in front of the camera).
    """
    pixels, depth = xr.apply_ufunc(
        project_opencv,
        points, world_2_cam, intrinsics,
        input_core_dims=[[schema.XYZ], [schema.MAT4_ROW, schema.MAT4_COL], [schema.MAT3_ROW, schema.MAT3_COL]],
        output_core_dims=[[UV], []],
        dask="parallelized",
        output_dtypes=[np.float64, np.float64],
        dask_gufunc_kwargs={"output_sizes": {UV: 2}},
    )
    camera_dims = [dim for dim in world_2_cam.dims if dim not in (schema.MAT4_ROW, schema.MAT4_COL)]
    point_dims = [dim for dim in points.dims if dim != schema.XYZ]
    order = [*camera_dims, *(dim for dim in point_dims if dim not in camera_dims)]
    return xr.Dataset({"pixels": pixels.transpose(*order, UV), "depth": depth.transpose(*order)})
