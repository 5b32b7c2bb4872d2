"""Batched FLAME evaluation in torch: many timesteps of one sequence per call, on GPU or CPU.

Per timestep this computes what the official ``FlameProvider`` computes one timestep at a time:
the FLAME forward (linear blend skinning) with global rotation 0 and no translation, then the
model-to-world transform ``v_world = scale * R(t) @ v + translation[t]`` with ``R(t)`` the intrinsic
XYZ Euler rotation of ``rotation[t]``. The shape blend is constant over a sequence and is computed
once (:meth:`FlameModel.identity`); the model-to-world rotation and scale are folded into the
skinning transforms, so the vertices are transformed once.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from ..errors import FlameError
from ..progress import Progress
from .batching import default_batch_size, plan_timestep_batches, resolve_device
from .model import FLAME_URL, N_EXPRESSION, N_SHAPE, STATIC_EMBEDDING_FILE, FlameAssets, load_flame_assets
from .params import FlameParameters

if TYPE_CHECKING:
    import torch

MAX_CONTOUR_ANGLE = 39
CPU_TILE_BYTES = 1 << 20  # per-vertex transforms skinned together on CPU: sized to stay in a core's cache


@dataclass(frozen=True)
class FlameIdentity:
    """The shape-dependent part of FLAME for one sequence, on the model's device."""

    blend_basis: torch.Tensor      # (V * 3, 137): template + shape blend, then expression and pose directions
    shaped_joints: torch.Tensor    # (5, 3) joints of the shaped template
    scale: float


@dataclass(frozen=True)
class FlameMeshes:
    """Evaluated world-space meshes of a run of timesteps (numpy, float32)."""

    vertices: np.ndarray              # (T, 5023, 3)
    landmarks: np.ndarray | None      # (T, L, 3), L = 68 with contour landmarks, else 51


class FlameModel:
    """FLAME on a torch device in float32, evaluating whole runs of timesteps per call."""

    def __init__(self, assets: FlameAssets, device: str = "auto") -> None:
        import torch

        self.assets = assets
        self.device = resolve_device(device)
        vertex_count = assets.v_template.shape[0]
        self._shape_dirs = assets.shapedirs[:, :, :N_SHAPE].reshape(vertex_count * 3, N_SHAPE)
        expression_dirs = assets.shapedirs[:, :, N_SHAPE:]
        # One basis for what changes per timestep: 100 expression directions then 36 pose correctives.
        basis = np.concatenate(
            [expression_dirs.reshape(vertex_count * 3, -1), assets.posedirs.reshape(vertex_count * 3, -1)], axis=1)
        joint_expression_dirs = np.einsum("jv,vkl->ljk", assets.j_regressor, expression_dirs).reshape(N_EXPRESSION, -1)

        self._basis = self._tensor(basis)                                      # (V * 3, 136)
        self._joint_expression_dirs = self._tensor(joint_expression_dirs)      # (100, 5 * 3)
        # Skinning weights plus a column of ones: a sixth "joint" that carries the world translation.
        self._weights = self._tensor(np.concatenate([assets.weights, np.ones((vertex_count, 1))], axis=1))
        self._parents = [int(p) for p in assets.parents]
        self._faces = self._tensor(assets.faces, torch.int64)
        if assets.has_landmarks:
            self._static_landmark_vertices = self._faces[self._tensor(assets.static_face_idx, torch.int64)]
            self._static_bary = self._tensor(assets.static_bary)
        if assets.dynamic_face_idx is not None:
            self._contour_vertices = self._faces[self._tensor(assets.dynamic_face_idx, torch.int64)]
            self._contour_bary = self._tensor(assets.dynamic_bary)

    @classmethod
    def load(cls, folder: str | os.PathLike | None = None, device: str = "auto") -> FlameModel:
        """Load the model files from the FLAME folder (see :func:`load_flame_assets`) onto ``device``."""
        return cls(load_flame_assets(folder), device)

    @property
    def faces(self) -> np.ndarray:
        """Triangles (9976, 3) as int32 vertex indices."""
        return self.assets.faces.astype(np.int32)

    @property
    def n_landmarks(self) -> int:
        """Landmarks per mesh: 17 contour (with the dynamic embedding) + 51 static, or 0 without embeddings."""
        if not self.assets.has_landmarks:
            return 0
        contour = 0 if self.assets.dynamic_face_idx is None else self.assets.dynamic_face_idx.shape[1]
        return contour + len(self.assets.static_face_idx)

    def __dask_tokenize__(self) -> tuple:
        return ("nersemble_zarr.FlameModel", str(self.assets.folder), self.assets.is_standin, str(self.device))

    def identity(self, shape: np.ndarray, scale: float) -> FlameIdentity:
        """Shape blend of one sequence (float64 on the host, then moved to the device), reused per batch."""
        import torch

        shaped = self.assets.v_template.reshape(-1) + self._shape_dirs @ np.asarray(shape, dtype=np.float64)
        joints = self.assets.j_regressor @ shaped.reshape(-1, 3)
        return FlameIdentity(
            blend_basis=torch.cat([self._tensor(shaped)[:, None], self._basis], dim=1),
            shaped_joints=self._tensor(joints),
            scale=float(scale),
        )

    def evaluate(
        self,
        params: FlameParameters,
        *,
        identity: FlameIdentity | None = None,
        batch_size: int | None = None,
        landmarks: bool = False,
        progress: Progress | None = None,
    ) -> FlameMeshes:
        """World-space vertices (and landmarks) for every timestep of ``params``, in batches.

        ``identity`` (from :meth:`identity`) skips the shape blend when the caller already has it;
        ``progress`` is called with the number of timesteps finished after each batch.
        """
        import torch

        if landmarks:
            self.require_landmarks()
        if identity is None:
            identity = self.identity(params.shape, params.scale)
        batches = plan_timestep_batches(params.n_timesteps, batch_size or default_batch_size(self.device))
        vertices = np.empty((params.n_timesteps, self.assets.v_template.shape[0], 3), dtype=np.float32)
        points = np.empty((params.n_timesteps, self.n_landmarks, 3), dtype=np.float32) if landmarks else None

        def evaluate_batch(batch: slice) -> int:
            with torch.inference_mode():
                batch_vertices = self.forward(identity, params.take(batch))
                torch.from_numpy(vertices[batch]).copy_(batch_vertices)  # also (V, 3, B) -> (B, V, 3)
                if points is not None:
                    points[batch] = self.landmarks(batch_vertices, params.take(batch)).cpu().numpy()
            return batch.stop - batch.start

        for finished in self._map_batches(evaluate_batch, batches):
            if progress is not None:
                progress(finished)
        return FlameMeshes(vertices=vertices, landmarks=points)

    def _map_batches(self, evaluate_batch: Callable[[slice], int], batches: list[slice]) -> Iterator[int]:
        """Run ``evaluate_batch`` over ``batches``, in order of results.

        On a CPU with several torch threads the batches run side by side, one per thread, each single-threaded:
        a batch's small skinning steps then never wait at a barrier for the other threads, so the threads scale
        where intra-op parallelism does not (``torch.set_num_threads`` is per thread, the caller's is untouched).
        """
        import torch

        threads = torch.get_num_threads()
        if self.device.type != "cpu" or threads == 1 or len(batches) == 1:
            yield from map(evaluate_batch, batches)
            return
        with ThreadPoolExecutor(threads, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            yield from pool.map(evaluate_batch, batches)

    def forward(self, identity: FlameIdentity, params: FlameParameters) -> torch.Tensor:
        """World-space vertices (B, V, 3) on the device for the B timesteps of ``params`` (a strided view)."""
        import torch

        from .rotation import axis_angle_to_matrix, euler_xyz_to_matrix

        expression, translation = self._tensor(params.expression), self._tensor(params.translation)
        n = expression.shape[0]
        joint_rotations = axis_angle_to_matrix(self._pose(params))                          # (B, 5, 3, 3)

        identity_matrix = torch.eye(3, dtype=torch.float32, device=self.device)
        pose_features = (joint_rotations[:, 1:] - identity_matrix).reshape(n, -1)          # (B, 36)
        ones = torch.ones((n, 1), dtype=torch.float32, device=self.device)
        features = torch.cat([ones, expression, pose_features], dim=1)                   # (B, 137)
        # Vertex-major layout (V, ..., B), timesteps innermost: each step is a GEMM or an in-place pass.
        posed = (identity.blend_basis @ features.T).view(-1, 3, n)
        joints = identity.shaped_joints + (expression @ self._joint_expression_dirs).view(n, -1, 3)

        rotations, translations = self._skinning_transforms(joint_rotations, joints)
        model_to_world = identity.scale * euler_xyz_to_matrix(self._tensor(params.rotation))  # (B, 3, 3)
        rotations = model_to_world[:, None] @ rotations
        translations = (model_to_world[:, None] @ translations[..., None])[..., 0]
        # Per joint: the rotation's columns (k-major) then the translation; then the world translation.
        joint_transforms = torch.cat([rotations.transpose(-1, -2).flatten(2), translations], dim=2)
        world_translation = torch.cat([torch.zeros((n, 1, 9), device=self.device), translation[:, None]], dim=2)
        joint_transforms = torch.cat([joint_transforms, world_translation], dim=1).permute(1, 2, 0).reshape(6, -1)
        vertices = torch.empty_like(posed)
        vertex_tile = len(posed) if self.device.type != "cpu" else max(64, CPU_TILE_BYTES // (12 * 4 * n))
        for tile in plan_timestep_batches(len(posed), vertex_tile):
            blended = (self._weights[tile] @ joint_transforms).view(-1, 12, n)  # per-vertex 3x4 transforms
            out = torch.addcmul(blended[:, 9:], blended[:, 0:3], posed[tile, 0:1], out=vertices[tile])
            out.addcmul_(blended[:, 3:6], posed[tile, 1:2]).addcmul_(blended[:, 6:9], posed[tile, 2:3])
        return vertices.permute(2, 0, 1)

    def landmarks(self, vertices: torch.Tensor, params: FlameParameters) -> torch.Tensor:
        """Landmarks (B, L, 3): barycentric points on the meshes ``vertices`` (contour ones first)."""
        import torch

        self.require_landmarks()
        n = vertices.shape[0]
        corners = self._static_landmark_vertices.expand(n, -1, -1)
        bary = self._static_bary.expand(n, -1, -1)
        if self.assets.dynamic_face_idx is not None:
            angle_index = _contour_angle_index(self._tensor(params.neck))
            corners = torch.cat([self._contour_vertices[angle_index], corners], dim=1)
            bary = torch.cat([self._contour_bary[angle_index], bary], dim=1)
        batch_index = torch.arange(n, device=self.device)[:, None, None]
        return (vertices[batch_index, corners] * bary[..., None]).sum(dim=2)

    def _tensor(self, array: np.ndarray, dtype: torch.dtype | None = None) -> torch.Tensor:
        """A tensor (float32 unless ``dtype`` says otherwise) on the model's device."""
        import torch

        return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype or torch.float32, device=self.device)

    def _pose(self, params: FlameParameters) -> torch.Tensor:
        """Axis-angle poses (B, 5, 3) of global (always 0), neck, jaw, left eye and right eye."""
        import torch

        neck, jaw, eyes = self._tensor(params.neck), self._tensor(params.jaw), self._tensor(params.eyes)
        return torch.stack([torch.zeros_like(neck), neck, jaw, eyes[:, :3], eyes[:, 3:]], dim=1)

    def _skinning_transforms(
        self, joint_rotations: torch.Tensor, joints: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-joint rigid transforms (B, 5, 3, 3) and (B, 5, 3) mapping rest pose to posed vertices."""
        import torch

        world_rotations, world_translations = [], []
        for joint, parent in enumerate(self._parents):
            rotation = joint_rotations[:, joint]
            if parent < 0:
                world_rotations.append(rotation)
                world_translations.append(joints[:, joint])
                continue
            offset = joints[:, joint] - joints[:, parent]
            world_rotations.append(world_rotations[parent] @ rotation)
            world_translations.append(
                (world_rotations[parent] @ offset[..., None])[..., 0] + world_translations[parent])
        rotations = torch.stack(world_rotations, dim=1)
        translations = torch.stack(world_translations, dim=1) - (rotations @ joints[..., None])[..., 0]
        return rotations, translations

    def require_landmarks(self) -> None:
        """Raise a FlameError saying where the embeddings go when the landmark embeddings are missing."""
        if not self.assets.has_landmarks:
            raise FlameError(
                f"Landmarks need {self.assets.folder / STATIC_EMBEDDING_FILE}, which is missing; download the "
                f"landmark embeddings with the FLAME model from {FLAME_URL} and put them beside flame2023.pkl."
            )


def _contour_angle_index(neck: torch.Tensor) -> torch.Tensor:
    """Row (0..78) of the contour embedding for each timestep, from the neck's rotation about y.

    FLAME's convention: the angle in whole degrees, clamped to 39, with negative angles mapped to 40..78.
    """
    import torch

    from .rotation import axis_angle_to_matrix

    rotation = axis_angle_to_matrix(neck)  # the global rotation is 0, so the neck chain is the neck alone
    yaw = torch.atan2(-rotation[:, 2, 0], torch.sqrt(rotation[:, 0, 0] ** 2 + rotation[:, 1, 0] ** 2))
    degrees = torch.round(torch.clamp(-yaw * 180.0 / np.pi, max=MAX_CONTOUR_ANGLE)).long()
    negative = torch.where(degrees < -MAX_CONTOUR_ANGLE, 2 * MAX_CONTOUR_ANGLE, MAX_CONTOUR_ANGLE - degrees)
    return torch.where(degrees < 0, negative, degrees)
