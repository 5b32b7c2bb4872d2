"""What a view shows: the timesteps (``a:b:step`` of original frame indices) and cameras picked from a sequence."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import xarray as xr

from .. import schema
from ..errors import ConfigError, shown

_RANGE = re.compile(r"^\s*(-?\d*)\s*(?::\s*(-?\d*)\s*(?::\s*(-?\d*)\s*)?)?$")


def parse_timesteps(text: str | None) -> slice | None:
    """``"a:b:step"`` (each part optional; ``"5"`` alone is one timestep) as a slice of original frame indices."""
    if text is None:
        return None
    match = _RANGE.match(text)
    if not match or not text.strip():
        raise ConfigError(f"--timesteps {shown(text)} is not of the form a:b:step (e.g. 0:100:2).")
    start, stop, step = (int(part) if part not in (None, "") else None for part in match.groups())
    if ":" not in text:
        return slice(start, start + 1)
    if step is not None and step < 1:
        raise ConfigError(f"--timesteps {shown(text)} has step {step}; the step must be 1 or more.")
    return slice(start, stop, step)


def select_timesteps(dataset: xr.Dataset, timesteps: slice | Iterable[int] | None) -> np.ndarray:
    """The sequence's timesteps (original frame indices) that ``timesteps`` picks: a slice of frame indices
    (``start <= t < stop``, then every ``step``-th of those), a list of them, or None for all."""
    available = np.asarray(dataset[schema.TIMESTEP].values, dtype=np.int64)
    if timesteps is None:
        return available
    if isinstance(timesteps, slice):
        keep = np.ones(len(available), dtype=bool)
        if timesteps.start is not None:
            keep &= available >= timesteps.start
        if timesteps.stop is not None:
            keep &= available < timesteps.stop
        chosen = available[keep][:: timesteps.step or 1]
        if len(chosen) == 0:
            raise ConfigError(
                f"No timestep of this sequence lies in {timesteps.start}:{timesteps.stop}; its timesteps run "
                f"from {available.min()} to {available.max()} ({len(available)} frames).")
        return chosen
    chosen = np.asarray([int(t) for t in timesteps], dtype=np.int64)
    missing = [int(t) for t in chosen if t not in set(available.tolist())]
    if missing:
        raise ConfigError(f"Timestep {missing[0]} is not in this sequence; its timesteps run from "
                          f"{available.min()} to {available.max()} ({len(available)} frames).")
    return chosen


def select_cameras(dataset: xr.Dataset, cameras: Iterable[str] | None) -> list[str]:
    """The serials to show: ``cameras`` (each must be a camera of the sequence) or every camera."""
    serials = [str(serial) for serial in dataset[schema.SERIAL].values]
    if cameras is None:
        return serials
    chosen = [str(camera) for camera in cameras]
    for camera in chosen:
        if camera not in serials:
            raise ConfigError(f"Camera {shown(camera)} is not in this sequence; its cameras are {', '.join(serials)}.")
    return chosen
