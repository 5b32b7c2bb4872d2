"""The one progress protocol of the library's long-running functions.

A progress callback is any callable taking the number of units (videos, frames, cameras, timesteps)
just finished: ``list.append``, ``print`` and ``tqdm.update`` all fit. A callback that also has a
``set_total(total)`` method is told how many units are planned before the work starts, and one with a
``describe(text)`` method what is being worked on.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable


@runtime_checkable
class Progress(Protocol):
    """Called with how many more units are done."""

    def __call__(self, advance: int) -> None: ...


def set_total(progress: Progress | None, total: int) -> None:
    """Tell ``progress`` that ``total`` units are planned, when it takes a total (has ``set_total``)."""
    setter = getattr(progress, "set_total", None)
    if setter is not None:
        setter(total)


def advance(progress: Progress | None, done: int) -> None:
    """Report ``done`` more units to ``progress`` (no-op without one)."""
    if progress is not None:
        progress(done)


def describe(progress: Progress | None, text: str) -> None:
    """Tell ``progress`` what is being worked on, when it shows that (has ``describe``)."""
    describer = getattr(progress, "describe", None)
    if describer is not None:
        describer(text)


class LockedProgress:
    """Serialise a progress callback called from several threads; passes ``set_total`` through."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._lock = threading.Lock()

    def set_total(self, total: int) -> None:
        with self._lock:
            set_total(self._progress, total)

    def __call__(self, done: int) -> None:
        with self._lock:
            advance(self._progress, done)

