"""The benchmark's FLAME tracking converted exactly into the convention of VHAP and GaussianAvatars.

The benchmark's mesh of timestep t is ``v_world = s * R_e(t) @ v0(t) + T(t)``: ``v0`` is FLAME's linear blend
skinning with global rotation 0, ``R_e`` the intrinsic XYZ Euler rotation of ``rotation[t]``, ``s`` the scale.
VHAP and GaussianAvatars evaluate ``v = LBS(global rotation r) + t'``, and with the global rotation at the root
joint J0 (the LBS root has no pose correctives) ``LBS(r) = R(r) @ (v0 - J0) + J0``. Choosing ``R(r) = R_e`` and
``t' = T / s + R_e @ J0 - J0`` gives ``v = v_world / s``: the exported world is the benchmark's divided by
``s``, so cameras keep their rotation and have their translation divided by ``s`` (a perspective camera does not
see a uniform scale of the world about its centre). J0 depends on shape and expression and is computed here from
the model's joint regressor, in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import FlameError
from .model import FlameAssets
from .params import FlameParameters

STATIC_OFFSET_VERTICES = 5023
CANONICAL_JAW = ((0.3, 0.0, 0.0),)  # VHAP's canonical FLAME: open mouth, everything else zero


@dataclass(frozen=True)
class ConvertedFlame:
    """FLAME parameters in VHAP's convention (float32, per timestep) and the world scale they assume."""

    shape: np.ndarray        # (300,)
    expr: np.ndarray         # (T, 100)
    rotation: np.ndarray     # (T, 3) axis-angle at the root joint
    translation: np.ndarray  # (T, 3) in the exported world (benchmark world / world_scale)
    neck_pose: np.ndarray    # (T, 3)
    jaw_pose: np.ndarray     # (T, 3)
    eyes_pose: np.ndarray    # (T, 6)
    world_scale: float       # the benchmark's scale: exported world = benchmark world / world_scale

    def timestep_arrays(self, t: int) -> dict[str, np.ndarray]:
        """The npz content VHAP writes for one timestep (keys, shapes and dtypes as VHAP's writer)."""
        return {
            "translation": self.translation[[t]],
            "rotation": self.rotation[[t]],
            "neck_pose": self.neck_pose[[t]],
            "jaw_pose": self.jaw_pose[[t]],
            "eyes_pose": self.eyes_pose[[t]],
            "shape": self.shape,
            "expr": self.expr[[t]],
            "static_offset": np.zeros((1, STATIC_OFFSET_VERTICES, 3), dtype=np.float32),
        }

    def canonical_arrays(self) -> dict[str, np.ndarray]:
        """canonical_flame_param.npz as VHAP writes it (zero pose and expression, open jaw)."""
        return {
            "translation": np.zeros((1, 3), dtype=np.float32),
            "rotation": np.zeros((1, 3), dtype=np.float32),
            "neck_pose": np.zeros((1, 3), dtype=np.float32),
            "jaw_pose": np.array(CANONICAL_JAW),
            "eyes_pose": np.zeros((1, 6), dtype=np.float32),
            "shape": self.shape,
            "expr": np.zeros((1, self.expr.shape[1]), dtype=np.float32),
            "static_offset": np.zeros((1, STATIC_OFFSET_VERTICES, 3), dtype=np.float32),
        }


def root_joints(assets: FlameAssets, params: FlameParameters) -> np.ndarray:
    """FLAME's root joint (T, 3) in model space for every timestep: regressed from the shaped, expressed template."""
    regressor = assets.j_regressor[0].astype(np.float64)                         # (V,)
    template_joint = regressor @ assets.v_template.astype(np.float64)            # (3,)
    directions = np.einsum("v,vkl->kl", regressor, assets.shapedirs.astype(np.float64))  # (3, 400)
    n_shape = np.shape(params.shape)[0]
    shape_joint = directions[:, :n_shape] @ np.asarray(params.shape, dtype=np.float64)
    expression = np.asarray(params.expression, dtype=np.float64)
    expression_joint = expression @ directions[:, n_shape:n_shape + expression.shape[1]].T
    return template_joint + shape_joint + expression_joint


def to_vhap(assets: FlameAssets, params: FlameParameters) -> ConvertedFlame:
    """Convert the benchmark's tracking into VHAP's axis-angle-at-root convention (see the module docstring)."""
    euler = np.asarray(params.rotation, dtype=np.float64)
    rotations = Rotation.from_euler("XYZ", euler)
    joints = root_joints(assets, params)
    scale = float(params.scale)
    if scale <= 0:
        raise FlameError(
            f"{params.source}: 'scale' is {scale}, expected a positive number to convert FLAME into VHAP's convention."
        )
    translation = np.asarray(params.translation, dtype=np.float64) / scale + rotations.apply(joints) - joints
    return ConvertedFlame(
        shape=np.asarray(params.shape, dtype=np.float32),
        expr=np.asarray(params.expression, dtype=np.float32),
        rotation=rotations.as_rotvec().astype(np.float32),
        translation=translation.astype(np.float32),
        neck_pose=np.asarray(params.neck, dtype=np.float32),
        jaw_pose=np.asarray(params.jaw, dtype=np.float32),
        eyes_pose=np.asarray(params.eyes, dtype=np.float32),
        world_scale=scale,
    )


def scale_world_to_camera(world_2_cam: np.ndarray, world_scale: float) -> np.ndarray:
    """World-to-camera matrices (..., 4, 4) of the exported world (benchmark world / ``world_scale``)."""
    scaled = np.array(world_2_cam, dtype=np.float64, copy=True)
    scaled[..., :3, 3] /= world_scale
    return scaled
