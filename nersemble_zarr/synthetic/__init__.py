"""A synthetic NeRSemble benchmark: the real server's files and layout, with a rendered moving head.

``generate(root, SyntheticConfig.tiny())`` writes both benchmarks under ``root``; ``render_views`` renders any
camera (hold-out cameras included) as hidden ground truth; ``tracking`` and ``camera_params`` give the exact
values behind the files, and ``model_to_world`` is the FLAME placement every render follows.
"""

from __future__ import annotations

from .config import SIZES, SyntheticConfig, config_of_size
from .generator import expected_files, generate, mono_metadata, nvs_metadata, older_tracking, timesteps
from .render import render_views
from .scene import camera_params, model_to_world, original_frames, project, rotation_matrices, tracking
from .svfr import render_svfr_image, svfr_flame_parameters

__all__ = [
    "SIZES",
    "SyntheticConfig",
    "camera_params",
    "config_of_size",
    "expected_files",
    "generate",
    "model_to_world",
    "mono_metadata",
    "nvs_metadata",
    "older_tracking",
    "original_frames",
    "project",
    "render_svfr_image",
    "render_views",
    "rotation_matrices",
    "svfr_flame_parameters",
    "timesteps",
    "tracking",
]
