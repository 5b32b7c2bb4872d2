"""FLAME 2023 meshes for whole sequences: chumpy-free model loading, batched torch evaluation (GPU or CPU),
xarray/dask integration, camera projection and the test stand-in model (which is NOT FLAME).

torch is imported only when a model is built or evaluated.
"""

from .lbs import FlameIdentity, FlameMeshes, FlameModel
from .mesh_io import write_mesh
from .model import FlameAssets, load_flame_assets, resolve_flame_dir
from .params import FlameParameters
from .projection import project_points
from .sequence import faces_dataarray, flame_parameters, sequence_landmarks, sequence_vertices
from .standin import write_standin_flame

__all__ = [
    "FlameAssets",
    "FlameIdentity",
    "FlameMeshes",
    "FlameModel",
    "FlameParameters",
    "faces_dataarray",
    "flame_parameters",
    "load_flame_assets",
    "project_points",
    "resolve_flame_dir",
    "sequence_landmarks",
    "sequence_vertices",
    "write_mesh",
    "write_standin_flame",
]
