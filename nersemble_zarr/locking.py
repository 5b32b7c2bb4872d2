"""Advisory locks that keep two runs from writing into one folder at once (fetch: ROOT, convert: STORE).

``folder_lock(folder, name, what)`` takes an exclusive ``flock`` on ``folder/name`` (creating the folder
if needed) or raises LockError naming the process that holds it. The lock file holds the holder's pid;
it is removed when the block ends, and the folder too when this call created it and nothing else landed
in it. A killed holder's lock is released by the OS; its leftover file is simply taken over.
The lock is advisory: it binds nersemble_zarr runs, not other programs. It works on local file systems
(and on NFS where the kernel maps ``flock`` onto NFS locks); stores on object storage are not locked.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import LockError, write_failure

_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@contextmanager
def folder_lock(folder: Path, name: str, what: str) -> Iterator[None]:
    """Hold the lock ``folder/name`` for the block; ``what`` names the run and folder in the error
    (e.g. "fetch into /data/root")."""
    created = not folder.exists()
    path = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = _acquire(path, what)
    except OSError as error:
        if error.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            raise _not_plain(path) from None
        raise LockError(write_failure(f"the lock file {path}", error)) from None
    try:
        yield
    finally:
        try:
            os.unlink(path)  # while still holding it: a run that opened this file notices and opens a new one
        except FileNotFoundError:
            pass
        os.close(fd)
        if created:
            try:
                folder.rmdir()
            except OSError:  # not empty: the run wrote something
                pass


def _acquire(path: Path, what: str) -> int:
    """An open descriptor of ``path`` holding its exclusive lock, with this process's pid written in."""
    while True:
        fd = os.open(path, _FLAGS, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            by = f"process {holder}" if holder else "another process"
            raise LockError(f"Another {what} is running ({by}); wait for it to finish or stop it, "
                            "then rerun the same command.") from None
        except BaseException:
            os.close(fd)
            raise
        info = os.fstat(fd)
        try:
            same = os.path.samestat(info, os.lstat(path))
        except FileNotFoundError:
            same = False
        if same and not (stat.S_ISREG(info.st_mode) and info.st_nlink == 1):
            os.close(fd)
            raise _not_plain(path)
        if same:
            break
        os.close(fd)  # a releasing holder removed the file we locked: lock the one at ``path`` now
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:  # a full disk: the lock holds all the same, only the pid is missing from the message
        pass
    return fd


def _not_plain(path: Path) -> LockError:
    return LockError(f"The lock file {path} is a link, not a file of its own; remove it, then rerun the same command.")


def _holder(fd: int) -> int | None:
    """The pid written in a lock file, if it is there."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
