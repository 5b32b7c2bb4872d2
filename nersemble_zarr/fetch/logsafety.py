"""Keeping the access URL and terminal control sequences out of what a fetch shows and logs.

Everything a server sends (reason phrases, headers such as Location, bodies) is untrusted text: before
it becomes part of an error message it goes through ``untrusted_text``, which drops escape sequences and
control characters (a reason phrase could set the terminal's title or clear the screen) and redacts the
URL. urllib3 logs request lines such as ``"GET /<secret>/nvs/... HTTP/1.1" 200`` at DEBUG level; while a
fetch runs, a filter on those loggers cleans every record the same way.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import quote, unquote, urlsplit

from ..credentials import REDACTED, redact

_GUARDED_PREFIXES = ("urllib3", "requests", "nersemble_zarr")
# CSI (ESC [ ... final byte, or the 8-bit CSI), OSC/DCS/APC/PM/SOS strings up to BEL or ST, other ESC pairs
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[\]PX^_]|[\x90\x9d\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[@-_]?"
)
_WORD = re.compile(r"[A-Za-z0-9_.~%-]{8,}")
TEXT_LIMIT = 160  # characters of server text kept in a message


def strip_controls(text: str) -> str:
    """``text`` without terminal escape sequences and without control or format characters (newlines included)."""
    text = _ESCAPE_SEQUENCE.sub("", text)
    return "".join(ch if ch == " " or not unicodedata.category(ch).startswith(("C", "Z")) else " "
                   for ch in text if unicodedata.category(ch) not in ("Cf", "Cs", "Co", "Cn"))


def untrusted_text(text: str, url: str, limit: int | None = TEXT_LIMIT) -> str:
    """Server-supplied ``text`` made safe to show: controls stripped, the URL redacted, cut to ``limit``."""
    cleaned = " ".join(strip_controls(text).split())
    cleaned = _redact_all(cleaned, url)
    return cleaned if limit is None or len(cleaned) <= limit else cleaned[: limit - 3].rstrip() + "..."


def _redact_all(text: str, url: str) -> str:
    """Redact the URL as given and in its percent-encoded and percent-decoded spellings, and any run of 8 or
    more URL characters that is part of its secret path (a server may echo a path cut short)."""
    for spelling in dict.fromkeys((url, unquote(url), quote(url, safe=":/"))):
        text = redact(text, spelling)
    secret = unquote(urlsplit(url).path)
    return _WORD.sub(lambda m: REDACTED if m.group() in secret or unquote(m.group()) in secret else m.group(), text)


class RedactingFilter(logging.Filter):
    """Rewrites a record whose text contains the URL (or part of it) or control characters into its clean form."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _redact_all(strip_controls(message), self.url)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


@contextmanager
def redacted_logs(url: str) -> Iterator[None]:
    """Within the block, clean the records of the HTTP libraries' and this package's loggers (see RedactingFilter)."""
    names = [name for name in list(logging.root.manager.loggerDict) if name.startswith(_GUARDED_PREFIXES)]
    loggers = [logging.getLogger(name) for name in {*names, *_GUARDED_PREFIXES}]
    guard = RedactingFilter(url)
    for logger in loggers:
        logger.addFilter(guard)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(guard)
