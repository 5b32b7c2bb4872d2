"""What every local input must be: a regular file (no symbolic link), within a size limit, and not the
same file on disk as another input (a hard link, or a link through a folder, would convert one camera's
data as another's)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..errors import InputDataError
from .origin import Origin


def regular_file(path: Path, origin: Origin) -> int:
    """The size of ``path``, refusing a missing file or a symbolic link."""
    if path.is_symlink():
        raise origin.error("is a symbolic link; convert reads only the regular files fetch writes (replace the "
                           "link with a copy of its file)")
    if not path.is_file():
        raise InputDataError(f"{origin.label} is missing; run `nersemble-zarr fetch` first.")
    return path.stat().st_size


def read_limited(path: Path, origin: Origin, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes."""
    size = regular_file(path, origin)
    if size > limit:
        raise origin.error(f"is {size} bytes, more than the {limit} bytes such a file may have")
    return path.read_bytes()


def distinct_files(paths: Sequence[Path], kind: str) -> None:
    """Refuse two of ``paths`` that are one file on disk (same device and inode)."""
    seen: dict[tuple[int, int], Path] = {}
    for path in paths:
        status = os.stat(path)
        first = seen.setdefault((status.st_dev, status.st_ino), path)
        if first != path:
            other = first.name if first.parent == path.parent else first
            raise Origin.local(path, kind).error(
                f"is the same file as {other} (a hard link or a linked folder), which would store one camera's "
                "data as another's"
            )
