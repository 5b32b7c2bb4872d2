"""The NeRSemble v2 dataset's ``metadata_sequences.csv``: which sequences each participant has.

Columns ``ID, wears_glasses, BACKGROUND, <sequence names...>``; a cell ``x`` or ``m`` means the participant has
that sequence (``m`` is undocumented and counted as available, as the official kit does), anything else that it
has not. The text comes from the server, so it is checked before it can shape a path: participant ids are
whole numbers of at most 6 digits, each listed once; sequence names are safe folder names, each listed once.
"""

from __future__ import annotations

import csv
import io
import re

from .. import catalogue
from ..errors import CatalogueError, shown
from .origin import Origin

SEQUENCES_CSV = "metadata_sequences.csv"
PARTICIPANTS_CSV = "metadata_participants.csv"
BACKGROUND = "BACKGROUND"
AVAILABLE = ("x", "m")
_NOT_SEQUENCES = ("ID", "wears_glasses")
_PARTICIPANT_ID = re.compile(r"^[0-9]{1,6}$")
MAX_COLUMNS = 1000


def parse_sequences_csv(raw: bytes, origin: Origin) -> tuple[dict[int, tuple[str, ...]], frozenset[int]]:
    """(participant -> available sequences in column order, the participants that have BACKGROUND pictures)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise origin.error("is not UTF-8 text") from None
    if "\x00" in text:
        raise origin.error("is not a text file (it holds NUL bytes)")
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows or [cell.strip() for cell in rows[0][:1]] != ["ID"]:
        raise origin.error("is not in the expected layout: its first column is not ID")
    header = [cell.strip() for cell in rows[0]]
    if len(header) > MAX_COLUMNS:
        raise origin.error(f"has {len(header)} columns, more than the {MAX_COLUMNS} a sequence list can have")
    columns = [name for name in header if name not in _NOT_SEQUENCES]
    for name in columns:
        try:
            catalogue.check_safe_name(name, "sequence")
        except CatalogueError:
            raise origin.error(f"names a sequence column {shown(name)} that is not a safe folder name") from None
    if len(set(header)) != len(header):
        raise origin.error("lists a column twice")
    sequences: dict[int, tuple[str, ...]] = {}
    backgrounds = set()
    for number, row in enumerate(rows[1:], start=2):
        cells = dict(zip(header, (cell.strip() for cell in row)))
        participant = cells.get("ID", "")
        if not _PARTICIPANT_ID.match(participant):
            raise origin.error(f"has a participant id {shown(participant)} on line {number} that is not a whole "
                               "number of at most 6 digits")
        if int(participant) in sequences:
            raise origin.error(f"lists participant {int(participant)} twice")
        available = [name for name in columns if cells.get(name, "") in AVAILABLE]
        if BACKGROUND in available:
            backgrounds.add(int(participant))
        sequences[int(participant)] = tuple(name for name in available if name != BACKGROUND)
    return sequences, frozenset(backgrounds)
