"""Reading the server's ``{benchmark}/metadata.json``: which participants and sequences it has, and NVS timesteps.

The server's text is untrusted: only participants and sequences that the catalogue knows are kept, and
timesteps must be non-negative integers, so nothing from the server can shape a local path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .. import catalogue
from ..errors import InputDataError


@dataclass(frozen=True)
class ServerMetadata:
    """Sequences per participant (catalogue names, catalogue order) and NVS timesteps per participant."""

    sequences: dict[int, tuple[str, ...]]
    timesteps: dict[int, tuple[int, ...]]


def parse_metadata(benchmark: str, raw: bytes) -> ServerMetadata:
    """Parse the bytes of ``{benchmark}/metadata.json``; malformed content raises InputDataError."""
    name = f"{benchmark}/{catalogue.METADATA_FILE}"
    try:
        document = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise InputDataError(f"The server's {name} is not valid JSON; delete it and fetch again.") from None
    try:
        return _parse_nvs(document) if benchmark == "nvs" else _parse_mono(document)
    except KeyError as error:
        detail = f"it lacks the key {error}"
    except (ValueError, TypeError, AttributeError) as error:
        detail = str(error) or type(error).__name__
    raise InputDataError(f"The server's {name} is not in the expected layout: {detail}.")


def _parse_nvs(document: dict) -> ServerMetadata:
    sequences, timesteps = {}, {}
    listed = {int(key): value for key, value in document["sequences"].items()}
    for participant, sequence in catalogue.NVS_SEQUENCES.items():
        if participant not in listed:
            continue
        entry = listed[participant]
        if entry["sequence_name"] != sequence:
            raise ValueError(f"participant {participant} has sequence {entry['sequence_name']!r}, not {sequence!r}")
        steps = tuple(entry["timesteps"])
        if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in steps):
            raise TypeError(f"the timesteps of participant {participant} are not all non-negative integers")
        sequences[participant] = (sequence,)
        timesteps[participant] = steps
    return ServerMetadata(sequences, timesteps)


def _parse_mono(document: dict) -> ServerMetadata:
    listed = {int(key): value for key, value in document["participants_metadata"].items()}
    sequences = {}
    for participant in catalogue.MONO_PARTICIPANTS:
        if participant in listed:
            on_server = listed[participant]["sequences_metadata"]
            known = catalogue.MONO_TRAIN_SEQUENCES + catalogue.MONO_TEST_SEQUENCES
            sequences[participant] = tuple(s for s in known if s in on_server)
    return ServerMetadata(sequences, {})
