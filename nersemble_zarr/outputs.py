"""Checks on the paths a command writes to: never replace or write into something that is not ours to replace.

A file output (zip, mesh, PNG) is only ever replaced when it is a regular file: a FIFO, a device node
(``/dev/null`` as root), a socket, a folder or a symbolic link given as the output is refused. A folder
output (export folder, store, demo folder) must be a folder if it exists.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ConfigError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words ('a FIFO (named pipe)', 'a regular file', ...)."""
    fallback = "a regular file" if stat.S_ISREG(mode) else "a special file"
    return next((name for test, name in _KINDS if test(mode)), fallback)


def check_output_file(path: str | os.PathLike, what: str = "output") -> Path:
    """Return ``path`` if nothing is there or a regular file (not a link) is, else raise a ConfigError."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return path
    if not stat.S_ISREG(mode):
        raise ConfigError(
            f"The {what} {path} exists and is {kind_of(mode)}, not a regular file; refusing to replace it "
            "(give the path of a new or regular file)."
        )
    return path


def check_output_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Return ``path`` if nothing is there or it is a folder (or a link to one), else raise a ConfigError."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            raise ConfigError(
                f"The {what} {path} is a symbolic link to nothing; remove it or give another path."
            ) from None
        return path
    if not stat.S_ISDIR(mode):
        raise ConfigError(
            f"The {what} {path} exists and is {kind_of(mode)}, not a folder; refusing to write there "
            "(give the path of a new or existing folder)."
        )
    return path
