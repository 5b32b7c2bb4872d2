"""FLAME tracking parameters of one sequence (or a slice of its timesteps), validated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import FlameError
from ..real_values import check_real
from ..schema import FLAME_N_EXPRESSION, FLAME_N_SHAPE

# Per-timestep parameters -> number of values per timestep (names equal the tracking npz keys).
TIMESTEP_WIDTHS: dict[str, int] = {
    "expression": FLAME_N_EXPRESSION, "rotation": 3, "translation": 3, "jaw": 3, "neck": 3, "eyes": 6,
}


@dataclass(frozen=True)
class FlameParameters:
    """One identity (shape, scale) and per-timestep expression, pose and model-to-world parameters."""

    shape: np.ndarray        # (300,)
    scale: float
    expression: np.ndarray   # (T, 100)
    rotation: np.ndarray     # (T, 3) XYZ Euler angles of the model-to-world rotation
    translation: np.ndarray  # (T, 3)
    jaw: np.ndarray          # (T, 3) axis-angle
    neck: np.ndarray         # (T, 3) axis-angle
    eyes: np.ndarray         # (T, 6) axis-angle, left then right eye
    source: str = "FLAME parameters"  # names the origin in error messages

    def __post_init__(self) -> None:
        for name in ("shape", "scale", *TIMESTEP_WIDTHS):
            check_real(getattr(self, name), f"{self.source}: {name!r}", FlameError)
        shape = np.asarray(self.shape)
        if shape.shape != (FLAME_N_SHAPE,):
            raise FlameError(f"{self.source}: 'shape' has shape {shape.shape}, expected ({FLAME_N_SHAPE},).")
        if not np.isfinite(float(self.scale)):
            raise FlameError(f"{self.source}: 'scale' is {self.scale}, expected a finite number.")
        n_timesteps = np.shape(self.expression)[0] if np.ndim(self.expression) else -1
        for name, width in TIMESTEP_WIDTHS.items():
            found = np.shape(getattr(self, name))
            if found != (n_timesteps, width):
                raise FlameError(
                    f"{self.source}: {name!r} has shape {found}, expected ({max(n_timesteps, 0)}, {width}) "
                    f"(timesteps x values)."
                )

    @property
    def n_timesteps(self) -> int:
        """Number of timesteps."""
        return int(np.shape(self.expression)[0])

    def take(self, timesteps: slice) -> FlameParameters:
        """The same identity with only the timesteps selected by ``timesteps``."""
        sliced = {name: np.asarray(getattr(self, name))[timesteps] for name in TIMESTEP_WIDTHS}
        return FlameParameters(shape=self.shape, scale=self.scale, source=self.source, **sliced)
