"""The official ``FlameProvider`` over the batched FLAME: the whole sequence is evaluated once, on first use.

The model is loaded from the FLAME folder (``flame_dir``, else ``$NERSEMBLE_FLAME_DIR``, else
``~/.cache/FLAME``, where the official toolkit looks), on the GPU when there is one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from ..errors import FlameError
from ..flame.lbs import FlameMeshes, FlameModel
from ..flame.params import FlameParameters
from .data_managers import FlameTracking

if TYPE_CHECKING:
    import trimesh


class FlameProvider:
    """World-space FLAME meshes of one tracked sequence, indexed by timestep position (0..T-1)."""

    def __init__(
        self, flame_tracking: FlameTracking, *, flame_dir: str | os.PathLike | None = None, device: str = "auto"
    ) -> None:
        shape = np.asarray(flame_tracking.shape)
        if shape.shape[0] != 1:
            raise FlameError(f"The tracking has {shape.shape[0]} sets of shape parameters; expected 1 per sequence.")
        self._params = FlameParameters(
            shape=shape[0], scale=float(np.asarray(flame_tracking.scale).reshape(-1)[0]),
            expression=flame_tracking.expression, rotation=flame_tracking.rotation,
            translation=flame_tracking.translation, jaw=flame_tracking.jaw, neck=flame_tracking.neck,
            eyes=flame_tracking.eyes, source="the FLAME tracking",
        )
        self._flame_dir, self._device = flame_dir, device
        self._model: FlameModel | None = None
        self._meshes: FlameMeshes | None = None
        self._T = self._params.n_timesteps

    @property
    def flame_model(self) -> FlameModel:
        """The batched FLAME model, loaded on first use."""
        if self._model is None:
            self._model = FlameModel.load(self._flame_dir, device=self._device)
        return self._model

    def get_vertices(self, timestep: int) -> np.ndarray:
        """World-space vertices (5023, 3) float32 of ``timestep``."""
        index = self._index(timestep)
        return self._evaluated(landmarks=False).vertices[index]

    def get_landmarks(self, timestep: int) -> np.ndarray:
        """World-space landmarks (68, 3) float32 of ``timestep`` (needs the landmark embeddings)."""
        index = self._index(timestep)
        return self._evaluated(landmarks=True).landmarks[index]

    def get_mesh(self, timestep: int) -> "trimesh.Trimesh":
        """The mesh of ``timestep`` as a ``trimesh.Trimesh`` (vertices unprocessed, FLAME's faces)."""
        return self.create_mesh(self.get_vertices(timestep))

    def create_mesh(self, vertices: np.ndarray) -> "trimesh.Trimesh":
        """A ``trimesh.Trimesh`` of ``vertices`` (5023, 3) with FLAME's faces, unprocessed (trimesh, a dependency
        of the package, is imported on first use: importing it is slow)."""
        import trimesh

        return trimesh.Trimesh(vertices, self.flame_model.faces, process=False)

    def get_model_to_world_transformation(self, timestep: int) -> np.ndarray:
        """The 4x4 model-to-world matrix of ``timestep``: scale * R (intrinsic XYZ Euler) and translation."""
        from scipy.spatial.transform import Rotation

        index = self._index(timestep)
        matrix = np.eye(4, dtype=np.float32)
        rotation = Rotation.from_euler("XYZ", np.asarray(self._params.rotation[index], dtype=np.float64))
        matrix[:3, :3] = rotation.as_matrix() * self._params.scale
        matrix[:3, 3] = self._params.translation[index]
        return matrix

    def has_mesh(self, timestep: int) -> bool:
        return 0 <= timestep < self._T

    def _index(self, timestep: int) -> int:
        if not self.has_mesh(timestep):
            raise FlameError(f"Timestep {timestep} is out of range; the tracking has {self._T} timesteps.")
        return int(timestep)

    def _evaluated(self, landmarks: bool) -> FlameMeshes:
        """Every timestep's vertices (and landmarks, when the model has the embeddings), evaluated in one
        batched pass the first time they are needed."""
        if landmarks:
            self.flame_model.require_landmarks()
        if self._meshes is None:
            self._meshes = self.flame_model.evaluate(self._params, landmarks=self.flame_model.assets.has_landmarks)
        return self._meshes
