"""The CLI's one adapter from the library's progress protocol to a tqdm bar on stderr."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class ProgressBar:
    """A ``Progress`` drawing a tqdm bar, opened at the first report (so a command that fails before any work
    prints no bar); ``set_total`` (re)sizes it."""

    def __init__(self, description: str, unit: str) -> None:
        self.description, self.unit = description, unit
        self._bar = None
        self._lock = threading.Lock()

    def set_total(self, total: int) -> None:
        with self._lock:
            self._open().reset(total=total)

    def __call__(self, advance: int) -> None:
        with self._lock:
            self._open().update(advance)

    def describe(self, text: str) -> None:
        """Show ``text`` (e.g. the item being worked on) after the bar."""
        with self._lock:
            self._open().set_postfix_str(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _open(self):
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=0, desc=self.description, unit=self.unit, dynamic_ncols=True, disable=None)
        return self._bar


@contextmanager
def progress_bar(description: str, unit: str) -> Iterator[ProgressBar]:
    """A ``ProgressBar`` closed when the block ends."""
    bar = ProgressBar(description, unit)
    try:
        yield bar
    finally:
        bar.close()
