"""Atomic file output: write under a unique temporary name beside the target, then move it into place.

A temporary file is hidden and named ``.{name}.{random}.part{suffix}`` (the target's suffix kept last, for
writers that choose the format by extension), so concurrent writers never share one, and what an
interrupted run left behind is found by ``remove_partial_files``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator

from .outputs import check_output_file

PARTIAL_PATTERN = ".*.part*"


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside ``path`` (hidden, unique, same suffix)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.part{path.suffix}")


class PendingFile:
    """A file to be written under a temporary name beside ``path``: ``commit`` moves it into place, ``discard``
    removes it (nothing when committed). An existing ``path`` that is not a regular file (FIFO, device, folder,
    link) is refused before anything is written."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = check_output_file(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temporary = temporary_path(self.path)

    def commit(self) -> None:
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on failure it is removed
    (:class:`PendingFile`)."""
    pending = PendingFile(path)
    try:
        yield pending.temporary
        pending.commit()
    finally:
        pending.discard()


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the whole new one.

    The temporary file is created exclusively, so a file or link planted under its name is never written through.
    """
    with atomic_path(path) as temporary, open(temporary, "xb") as handle:
        handle.write(data)


def remove_partial_files(folder: Path) -> None:
    """Delete temporary files an interrupted run left in ``folder``."""
    for leftover in folder.glob(PARTIAL_PATTERN):
        leftover.unlink(missing_ok=True)
