"""Opening ``NAME.part`` files so that nothing is ever written through a link.

A ``.part`` left in ROOT may be a symlink or a hard link to a file elsewhere (planted, or made by a
copy tool): appending to it would grow that file, and renaming it would leave a link under the final
name. A ``.part`` is only ever used when it is a regular file with a single link, opened with
``O_NOFOLLOW`` and checked on the open descriptor; anything else is removed (the link, never its target)
and the download starts from zero. Final names are judged with ``lstat``: a symlink is never complete.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def plain_size(path: Path, single_link: bool = True) -> int | None:
    """Size of ``path`` if it is a regular file (with one link when ``single_link``), else None."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode) or (single_link and info.st_nlink != 1):
        return None
    return info.st_size


def remove(path: Path) -> None:
    """Remove ``path`` itself (a link, never what it points to), if present."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class PartFile:
    """An open ``.part`` for reading its size, appending and truncating; a file, never a link."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.replaced_bytes = 0  # bytes of an unusable .part that was removed on open
        self._fd = self._open()

    def _open(self) -> int:
        flags = os.O_RDWR | _NOFOLLOW | _CLOEXEC
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            return os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError:  # a symlink (ELOOP), a folder, a FIFO...: not ours to open
            fd = None
        if fd is not None:
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                return fd
            os.close(fd)
        self.replaced_bytes = plain_size(self.path, single_link=False) or 0
        remove(self.path)
        return os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o644)

    @property
    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def restart(self) -> int:
        """Empty the file; returns the bytes dropped."""
        dropped = self.size
        os.ftruncate(self._fd, 0)
        return dropped

    def append(self, data: bytes) -> None:
        os.lseek(self._fd, 0, os.SEEK_END)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> "PartFile":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
