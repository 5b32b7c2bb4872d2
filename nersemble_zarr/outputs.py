"""Checks on the paths a command writes to: never replace or write into something that is not ours to replace.

A file output (zip, mesh, PNG, JSON) is only ever replaced when it is a regular file: a FIFO, a device node
(``/dev/null`` as root), a socket, a folder or a symbolic link given as the output is refused. A command
replaces an existing file only with ``--overwrite``, never writes over one of its own inputs and never creates
the folder of a file output: ``claim_output_file``, checked before the work. A folder output (export folder,
store, demo folder) must be a folder if it exists.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Iterable

from .errors import ConfigError, OutputError

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


def claim_output_file(
    path: str | os.PathLike, *, overwrite: bool, what: str = "output", inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Return ``path`` if the command may write its file there, checked before any work is done.

    The one rule for a file a command writes: nothing there, or a regular file and ``overwrite`` (never a FIFO,
    device, folder or link); never one of the command's own ``inputs`` (not even with ``overwrite``); its folder
    exists (nothing is created for it) and takes a new file. Refusals are one ConfigError sentence; a folder
    that does not take a file is an OutputError.
    """
    path = check_output_file(path, what)
    for source in inputs:
        if _same_file(path, Path(source)):
            raise ConfigError(f"The {what} {path} is also an input of this command ({source}); refusing to write "
                              "over it (give another path).")
    check_output_parent(path, what)
    if os.path.lexists(path) and not overwrite:
        raise ConfigError(f"The {what} {path} exists; pass --overwrite to replace it.")
    return path


def check_output_parent(path: Path, what: str = "output") -> Path:
    """Return the folder of ``path`` if it exists and a new file can be made there (tried with a hidden file
    that is removed at once), else raise a ConfigError (no such folder) or an OutputError (cannot write)."""
    parent = path.parent
    try:
        mode = os.stat(parent).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(f"The folder of the {what} {path} does not exist; create it first.") from None
    if not stat.S_ISDIR(mode):
        raise ConfigError(f"The folder of the {what} {path} is {kind_of(mode)}, not a folder; give a path in a "
                          "folder.")
    try:
        tempfile.TemporaryFile(dir=parent, prefix=f".{path.name}.", suffix=".probe").close()
    except OSError as error:
        raise OutputError(f"Cannot write the {what} {path}: its folder does not take a new file "
                          f"({error.strerror or type(error).__name__}); fix permissions or give another path.") \
            from None
    return parent


def _same_file(output: Path, source: Path) -> bool:
    """True when ``output`` names the file ``source`` (same path once links are resolved, or a hard link)."""
    try:
        if output.resolve() == source.resolve():
            return True
        return os.path.samefile(output, source)
    except (OSError, RuntimeError):  # nothing there, or a link loop (which check_output_file refuses)
        return False
