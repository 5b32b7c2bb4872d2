"""``{benchmark}/metadata.json``: which participants and sequences the benchmark has, NVS timesteps and
mono frame counts. fetch validates the server's copy with it and convert the local one, so both accept
exactly the same documents.

The text is untrusted: only participants and sequences that the catalogue knows are kept (others are
ignored), keys must be participant ids, timesteps unique integers in ``0..MAX_TIMESTEP`` and frame counts
integers in ``1..MAX_TIMESTEP + 1``, so nothing in it can shape a local path or overflow an int64.
"""

from __future__ import annotations

import re
from collections import Counter

from .. import catalogue
from ..errors import shown
from .jsontext import kind_of, parse_json
from .origin import Origin

MAX_TIMESTEP = 9_999_999  # frame index of a recording: 38 hours at 73 fps, and 7 digits in a file name
NVS_FORM = '{"sequences": {"388": {"sequence_name": ..., "timesteps": [...]}}}'
MONO_FORM = '{"participants_metadata": {"393": {"sequences_metadata": {"FREE": {"n_frames": N}}}}}'
_PARTICIPANT_ID = re.compile(r"[0-9]{1,6}")


class _Layout(Exception):
    """A document that is not in the expected layout; the message ends an error sentence."""


def parse_nvs(raw: bytes, origin: Origin) -> dict[int, tuple[str, tuple[int, ...]]]:
    """Catalogue participant -> (sequence name, timesteps) of an nvs metadata.json, in catalogue order."""
    document = parse_json(raw, origin)
    try:
        sequences = _by_participant(_field(document, "sequences", "the document"), "sequences")
        result = {}
        for participant, expected in catalogue.NVS_SEQUENCES.items():
            if participant in sequences:
                what = f"the entry of participant {participant}"
                name = _field(sequences[participant], "sequence_name", what)
                if name != expected:
                    raise _Layout(f"participant {participant} has sequence {shown(name)}, not {expected!r}")
                result[participant] = (name, _timesteps(_field(sequences[participant], "timesteps", what),
                                                        participant))
        return result
    except _Layout as problem:
        raise origin.error(f"is not in the expected layout {NVS_FORM}: {problem}") from None


def parse_mono(raw: bytes, origin: Origin) -> dict[int, dict[str, int]]:
    """Catalogue participant -> catalogue sequence -> number of frames of a mono_flame_avatar metadata.json."""
    document = parse_json(raw, origin)
    known = catalogue.MONO_TRAIN_SEQUENCES + catalogue.MONO_TEST_SEQUENCES
    try:
        participants = _by_participant(_field(document, "participants_metadata", "the document"),
                                       "participants_metadata")
        result = {}
        for participant in catalogue.MONO_PARTICIPANTS:
            if participant in participants:
                what = f"the entry of participant {participant}"
                listed = _object(_field(participants[participant], "sequences_metadata", what),
                                 f"the sequences_metadata of participant {participant}")
                result[participant] = {
                    sequence: _frame_count(listed[sequence], participant, sequence)
                    for sequence in known if sequence in listed
                }
        return result
    except _Layout as problem:
        raise origin.error(f"is not in the expected layout {MONO_FORM}: {problem}") from None


def _object(value: object, what: str) -> dict:
    if not isinstance(value, dict):
        raise _Layout(f"{what} is {kind_of(value)}, not an object")
    return value


def _field(value: object, key: str, what: str) -> object:
    mapping = _object(value, what)
    if key not in mapping:
        raise _Layout(f"{what} lacks the key {key!r}")
    return mapping[key]


def _by_participant(value: object, what: str) -> dict[int, object]:
    """An object keyed by participant ids, as a dict keyed by int."""
    result: dict[int, object] = {}
    for key, entry in _object(value, what).items():
        if not _PARTICIPANT_ID.fullmatch(key):
            raise _Layout(f"{what} has the key {shown(key)}, which is not a participant id such as 388")
        if int(key) in result:
            raise _Layout(f"{what} lists participant {int(key)} twice")
        result[int(key)] = entry
    return result


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _timesteps(value: object, participant: int) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise _Layout(f"the timesteps of participant {participant} are {kind_of(value)}, not a list")
    if not value:
        raise _Layout(f"participant {participant} has no timesteps")
    bad = [t for t in value if not (_whole(t) and 0 <= t <= MAX_TIMESTEP)]
    if bad:
        raise _Layout(f"the timesteps of participant {participant} are not all non-negative integers up to "
                      f"{MAX_TIMESTEP} (found {shown(bad[0])})")
    if len(set(value)) != len(value):
        repeated = next(t for t, count in Counter(value).items() if count > 1)
        raise _Layout(f"participant {participant} lists timestep {repeated} twice")
    return tuple(value)


def _frame_count(value: object, participant: int, sequence: str) -> int:
    count = _field(value, "n_frames", f"the entry of {participant} {sequence}")
    if not (_whole(count) and 1 <= count <= MAX_TIMESTEP + 1):
        raise _Layout(f"the n_frames of {participant} {sequence} is {shown(count)}; expected a whole number from 1 "
                      f"to {MAX_TIMESTEP + 1}")
    return count
