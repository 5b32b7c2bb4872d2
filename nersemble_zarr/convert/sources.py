"""The fetched metadata.json files under ROOT, read through the validation fetch uses (nersemble_zarr.inputs).

Every problem is an InputDataError naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import catalogue
from ..inputs import metadata
from ..inputs.files import read_limited
from ..inputs.jsontext import MAX_JSON_BYTES
from ..inputs.origin import Origin


def nvs_timesteps(root: Path) -> dict[int, tuple[str, np.ndarray]]:
    """participant -> (sequence name, original frame indices) from ``ROOT/nvs/metadata.json``."""
    path = root / "nvs" / catalogue.METADATA_FILE
    origin = Origin.local(path)
    parsed = metadata.parse_nvs(read_limited(path, origin, MAX_JSON_BYTES), origin)
    return {p: (name, np.array(timesteps, dtype=np.int64)) for p, (name, timesteps) in parsed.items()}


def mono_frame_counts(root: Path) -> dict[int, dict[str, int]]:
    """participant -> sequence -> number of frames, from ``ROOT/mono_flame_avatar/metadata.json``."""
    path = root / "mono_flame_avatar" / catalogue.METADATA_FILE
    origin = Origin.local(path)
    return metadata.parse_mono(read_limited(path, origin, MAX_JSON_BYTES), origin)
