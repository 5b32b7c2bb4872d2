"""Geometry of the synthetic subject, shared by the synthetic renderer and the FLAME stand-in model.

The synthetic head is an ellipsoid in FLAME model space (metres, y up, z towards the face). The renderer
draws it where the tracking puts the FLAME mesh (v_world = scale * R @ v + translation), and the stand-in
FLAME template lies on the same surface, so projected stand-in meshes land on the rendered subject.
"""

from __future__ import annotations

import numpy as np

# Semi-axes (x: ear to ear, y: chin to crown, z: back to nose) in metres, centred at HEAD_CENTER.
HEAD_RADII = np.array([0.078, 0.105, 0.095])
HEAD_CENTER = np.array([0.0, 0.0, 0.0])


def ellipsoid_points(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points spread over the head ellipsoid's surface, (n, 3) float64, model space."""
    directions = rng.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return HEAD_CENTER + directions * HEAD_RADII


def ellipsoid_normals(points: np.ndarray) -> np.ndarray:
    """Outward unit normals of the head ellipsoid at surface points (model space)."""
    gradient = (points - HEAD_CENTER) / HEAD_RADII**2
    return gradient / np.linalg.norm(gradient, axis=-1, keepdims=True)
