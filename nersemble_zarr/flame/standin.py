"""A stand-in for the licensed FLAME 2023 model, for tests and demos. IT IS NOT FLAME.

The stand-in has the real file's names, array shapes, dtypes and pickle structure (a protocol-2 dict
holding numpy arrays, a scipy sparse joint regressor and chumpy objects), filled with deterministic
random values. Its template lies on the synthetic head ellipsoid (nersemble_zarr.synthetic.head), so
projected stand-in meshes land on the rendered synthetic subject. Every file it writes carries a
notice saying it is not FLAME. Landmark embeddings are written beside it, so that the ``flame_model``
package can load it without downloading anything.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
from pathlib import Path

import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.spatial

from ..atomic import atomic_path
from ..synthetic.head import HEAD_CENTER, ellipsoid_points
from .model import (
    DYNAMIC_EMBEDDING_FILE, MODEL_FILE, N_CONTOUR_LANDMARKS, N_DYNAMIC_ANGLES, N_EXPRESSION, N_FACES, N_JOINTS,
    N_POSE_BASIS, N_SHAPE, N_VERTICES, STANDIN_KEY, STATIC_EMBEDDING_FILE,
)

STANDIN_NOTICE = (
    "NOT FLAME: random stand-in with FLAME 2023's shapes, written by nersemble_zarr for tests; "
    "the real model is licensed at https://flame.is.tue.mpg.de"
)
N_STATIC_LANDMARKS = 51

# Joints (global, neck, jaw, left eye, right eye) in model space (metres, y up, z towards the face),
# inside the head ellipsoid: the root and neck low at the back, the jaw below the face, eyes in front.
JOINT_POSITIONS = np.array([
    [0.0, -0.085, -0.020],
    [0.0, -0.060, -0.015],
    [0.0, -0.030, 0.020],
    [0.032, 0.030, 0.062],
    [-0.032, 0.030, 0.062],
])
KINTREE_TABLE = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)
# Reach (metres) of each joint's skinning influence.
JOINT_REACH = np.array([0.09, 0.06, 0.04, 0.015, 0.015])


class _ChumpyLikeArray:
    """An array that pickles as a ``chumpy.ch.Ch`` object (value in state ``x``), written without chumpy."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __reduce__(self):
        state = {"x": self.x, "_dirty_vars": set(), "_itr": None, "_make_dense": False, "_make_sparse": False}
        return copyreg.__newobj__, (_ChumpyLikeArray,), state


class _StandInPickler(pickle._Pickler):  # the pure-Python pickler lets us name the chumpy class ourselves
    def save_global(self, obj, name=None):
        if obj is _ChumpyLikeArray:
            self.write(pickle.GLOBAL + b"chumpy.ch\nCh\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def standin_model(seed: int = 0) -> dict[str, object]:
    """The stand-in model dictionary (plain numpy / scipy values), deterministic from ``seed``."""
    rng = np.random.default_rng(seed)
    v_template = ellipsoid_points(N_VERTICES, rng)
    shape_scale = 2e-3 / (1.0 + np.arange(N_SHAPE) / 30.0)
    expression_scale = 1e-3 / (1.0 + np.arange(N_EXPRESSION) / 30.0)
    shapedirs = rng.normal(size=(N_VERTICES, 3, N_SHAPE + N_EXPRESSION)) * np.concatenate(
        [shape_scale, expression_scale])
    return {
        STANDIN_KEY: STANDIN_NOTICE,
        "f": _surface_faces(v_template),
        "J_regressor": _joint_regressor(v_template, rng),
        "kintree_table": KINTREE_TABLE.copy(),
        "J": JOINT_POSITIONS.copy(),
        "weights": _skinning_weights(v_template),
        "posedirs": rng.normal(size=(N_VERTICES, 3, N_POSE_BASIS)) * 5e-4,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "v_template": v_template,
        "shapedirs": shapedirs,
    }


def write_standin_flame(
    folder: str | os.PathLike, seed: int = 0, *, chumpy_objects: bool = True, embeddings: bool = True
) -> Path:
    """Write the stand-in ``flame2023.pkl`` (and landmark embeddings) into ``folder``; return the model path.

    With ``chumpy_objects`` (the default, like the real file) ``shapedirs`` and ``J`` are pickled as
    ``chumpy.ch.Ch`` objects; without it every value is plain, which ``pickle.load`` reads without chumpy.
    """
    folder = Path(folder)
    model = standin_model(seed)
    if chumpy_objects:
        model["shapedirs"] = _ChumpyLikeArray(model["shapedirs"])
        model["J"] = _ChumpyLikeArray(model["J"])
    buffer = io.BytesIO()
    _StandInPickler(buffer, protocol=2).dump(model)
    path = folder / MODEL_FILE
    with atomic_path(path) as temporary:
        temporary.write_bytes(buffer.getvalue())
    if embeddings:
        _write_embeddings(folder, model["f"], model["v_template"], seed)
    return path


def _surface_faces(vertices: np.ndarray) -> np.ndarray:
    """9976 outward-facing triangles of the convex hull of the template (all of it but 66 triangles).

    The triangles left out share no corner, so every vertex stays in some face, as in FLAME: a mesh reader
    that drops unreferenced vertices (trimesh, the SVFR server's) still counts FLAME's 5023.
    """
    hull = scipy.spatial.ConvexHull(vertices).simplices
    dropped, touched = [], set()
    for index, triangle in enumerate(hull):
        if len(hull) - len(dropped) == N_FACES:
            break
        if touched.isdisjoint(triangle.tolist()):
            dropped.append(index)
            touched.update(triangle.tolist())
    simplices = np.delete(hull, dropped, axis=0)
    corners = vertices[simplices]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    inward = np.einsum("ij,ij->i", normals, corners.mean(axis=1) - HEAD_CENTER) < 0
    simplices[inward] = simplices[inward][:, ::-1]
    return simplices.astype(np.uint32)


def _joint_regressor(vertices: np.ndarray, rng: np.random.Generator) -> scipy.sparse.csc_matrix:
    """A sparse (5, 5023) regressor whose rows are convex vertex weights that reproduce JOINT_POSITIONS."""
    rows = np.zeros((N_JOINTS, N_VERTICES))
    for joint, target in enumerate(JOINT_POSITIONS):
        candidates = rng.choice(N_VERTICES, size=96, replace=False)
        system = np.vstack([vertices[candidates].T, np.full(len(candidates), 10.0)])
        weights, _ = scipy.optimize.nnls(system, np.append(target, 10.0))
        rows[joint, candidates] = weights / weights.sum()
    return scipy.sparse.csc_matrix(rows)


def _skinning_weights(vertices: np.ndarray) -> np.ndarray:
    """(5023, 5) weights falling off with distance to each joint; every row sums to 1."""
    distances = np.linalg.norm(vertices[:, None, :] - JOINT_POSITIONS[None], axis=-1)
    raw = np.exp(-0.5 * (distances / JOINT_REACH) ** 2) + 1e-6
    return raw / raw.sum(axis=1, keepdims=True)


def _write_embeddings(folder: Path, faces: np.ndarray, vertices: np.ndarray, seed: int) -> None:
    """Static (51) and dynamic contour (79 x 17) landmark embeddings on front-facing triangles."""
    rng = np.random.default_rng(seed + 1)
    front = np.flatnonzero(vertices[faces].mean(axis=1)[:, 2] > 0.02)
    static = {
        STANDIN_KEY: STANDIN_NOTICE,
        "lmk_face_idx": rng.choice(front, size=N_STATIC_LANDMARKS, replace=False).astype(np.uint32),
        "lmk_b_coords": rng.dirichlet(np.ones(3), size=N_STATIC_LANDMARKS),
    }
    with atomic_path(folder / STATIC_EMBEDDING_FILE) as temporary:
        temporary.write_bytes(pickle.dumps(static, protocol=2))
    dynamic = {
        STANDIN_KEY: STANDIN_NOTICE,
        "lmk_face_idx": rng.choice(front, size=(N_DYNAMIC_ANGLES, N_CONTOUR_LANDMARKS)).astype(np.int64),
        "lmk_b_coords": rng.dirichlet(np.ones(3), size=(N_DYNAMIC_ANGLES, N_CONTOUR_LANDMARKS)),
    }
    with atomic_path(folder / DYNAMIC_EMBEDDING_FILE) as temporary:
        with open(temporary, "wb") as file:
            np.save(file, np.array(dynamic, dtype=object), allow_pickle=True)
