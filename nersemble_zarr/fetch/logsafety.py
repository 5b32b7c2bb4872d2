"""Keeping the access URL out of log records, including the HTTP libraries' own debug lines.

urllib3 logs request lines such as ``"GET /<secret>/nvs/... HTTP/1.1" 200`` at DEBUG level. While a
fetch runs, a filter on those loggers replaces the URL, its secret path and its host with a placeholder.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from ..credentials import redact

_GUARDED_PREFIXES = ("urllib3", "requests", "nersemble_zarr")


class RedactingFilter(logging.Filter):
    """Rewrites a record whose text contains the URL (or part of it) into its redacted form."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.url)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


@contextmanager
def redacted_logs(url: str) -> Iterator[None]:
    """Within the block, redact ``url`` from records of the HTTP libraries' and this package's loggers."""
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
