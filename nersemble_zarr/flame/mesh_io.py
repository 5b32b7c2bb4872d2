"""Write one triangle mesh as PLY (binary) or OBJ (text), atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import FlameError
from ..atomic import atomic_path
from ..outputs import check_output_file

MESH_SUFFIXES = (".ply", ".obj")


def check_mesh_path(path: str | os.PathLike) -> Path:
    """Return ``path`` if it names a mesh format we write (.ply or .obj) and nothing but a regular file is there."""
    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise FlameError(f"Cannot write a mesh to {path}: expected a file name ending in .ply or .obj.")
    return check_output_file(path)


def write_mesh(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """Write vertices (V, 3) and triangles (F, 3) to ``path`` (.ply or .obj); nothing partial is left behind."""
    path = check_mesh_path(path)
    suffix = path.suffix.lower()
    vertices = np.asarray(vertices, dtype=np.float32)
    faces = np.asarray(faces, dtype=np.int32)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as file:
            file.write(ply_bytes(vertices, faces) if suffix == ".ply" else _obj_bytes(vertices, faces))
    return path


def ply_bytes(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """A binary little-endian PLY of float32 vertices and int32 triangles (what trimesh's load_ply reads)."""
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment written by nersemble_zarr\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    face_records = np.empty(len(faces), dtype=[("count", "u1"), ("indices", "<i4", (3,))])
    face_records["count"] = 3
    face_records["indices"] = faces
    return header.encode("ascii") + vertices.astype("<f4").tobytes() + face_records.tobytes()


def _obj_bytes(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    lines = ["# written by nersemble_zarr"]
    lines += [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in vertices.tolist()]  # 9 digits: float32 exactly
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces.tolist()]
    return ("\n".join(lines) + "\n").encode("ascii")
