"""Reading the server's ``{benchmark}/metadata.json``: which participants and sequences it has, and NVS timesteps.

The validation is the one convert applies to the local copy (nersemble_zarr.inputs.metadata): only
catalogue participants and sequences are kept, and timesteps are bounded non-negative integers, so
nothing from the server can shape a local path.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import catalogue
from ..inputs import metadata
from ..inputs.origin import Origin


@dataclass(frozen=True)
class ServerMetadata:
    """Sequences per participant (catalogue names, catalogue order) and NVS timesteps per participant."""

    sequences: dict[int, tuple[str, ...]]
    timesteps: dict[int, tuple[int, ...]]


def parse_metadata(benchmark: str, raw: bytes) -> ServerMetadata:
    """Parse the bytes of ``{benchmark}/metadata.json``; malformed content raises InputDataError."""
    origin = Origin(f"The server's {benchmark}/{catalogue.METADATA_FILE}", "delete it and fetch again")
    if benchmark == "nvs":
        parsed = metadata.parse_nvs(raw, origin)
        return ServerMetadata({p: (name,) for p, (name, _) in parsed.items()},
                              {p: timesteps for p, (_, timesteps) in parsed.items()})
    counts = metadata.parse_mono(raw, origin)
    return ServerMetadata({p: tuple(sequences) for p, sequences in counts.items()}, {})
