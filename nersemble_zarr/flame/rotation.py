"""Rotation conventions of the FLAME pipeline, batched in torch."""

from __future__ import annotations

import torch


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) from axis-angle vectors (..., 3) (Rodrigues' formula)."""
    angle = torch.linalg.vector_norm(axis_angle, dim=-1, keepdim=True)
    axis = axis_angle / angle.clamp_min(torch.finfo(axis_angle.dtype).tiny)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).unflatten(-1, (3, 3))
    sin, cos = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    identity = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return identity + sin * cross + (1.0 - cos) * (cross @ cross)


def euler_xyz_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) for intrinsic X-Y-Z Euler angles (..., 3) in radians.

    Equals ``scipy.spatial.transform.Rotation.from_euler("XYZ", angles).as_matrix()``: Rx(a) @ Ry(b) @ Rz(c).
    """
    a, b, c = angles.unbind(-1)
    return _rotation_about(0, a) @ _rotation_about(1, b) @ _rotation_about(2, c)


def _rotation_about(axis: int, angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) by ``angle`` about coordinate axis 0 (x), 1 (y) or 2 (z)."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        rows = [one, zero, zero, zero, cos, -sin, zero, sin, cos]
    elif axis == 1:
        rows = [cos, zero, sin, zero, one, zero, -sin, zero, cos]
    else:
        rows = [cos, -sin, zero, sin, cos, zero, zero, zero, one]
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))
