"""The access URLs of the servers: where they are read from, and how they are kept out of every output.

A URL is a credential. Each source says where its URL lives (``sources.Access``): the benchmarks' in
``NERSEMBLE_BENCHMARK_URL``, else ``~/.config/nersemble_benchmark/.env`` (the official toolkit's file); the v2
dataset's in ``NERSEMBLE_DATA_URL``, else ``~/.config/nersemble_data/.env`` (the official kit's). It is never
printed, logged or stored.
``fetch --url-file PATH`` (or ``-`` for standard input) reads it from a file (``read_url_file``), which keeps it
out of the command line (``--url`` is readable by every local user in ``/proc/PID/cmdline`` and lands in shell
history). A file the URL is read from must not be writable by other users nor owned by another user
(``check_private_file``): like ssh, such a file is refused, since anyone who can change it can redirect
downloads to a server of their choosing.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from .atomic import write_atomic
from .errors import ConfigError
from .sources.base import BENCHMARK_ACCESS, Access

REDACTED = "<access URL>"
MAX_URL_FILE_BYTES = 64 << 10


def _setting(env_var: str) -> re.Pattern:
    """A ``NAME = "value"`` line of a .env file (``export`` allowed)."""
    return re.compile(rf"^\s*(?:export\s+)?{env_var}\s*=\s*(.*?)\s*$")


def check_private_file(path: Path) -> None:
    """Refuse a file that another user may have written: writable by others, or owned by another user (not root)."""
    status = path.stat()
    if status.st_mode & stat.S_IWOTH:
        problem, fix = "is writable by every user", f"chmod o-w {path}"
    elif status.st_uid not in (os.geteuid(), 0):
        problem, fix = f"is owned by another user (uid {status.st_uid})", "make it your own file"
    else:
        return
    raise ConfigError(f"{path} {problem}, so someone else could change the access URL in it; refusing to read "
                      f"it ({fix}).")


def _read_env_file(path: Path, env_var: str) -> str | None:
    if not path.is_file():
        return None
    check_private_file(path)
    setting = _setting(env_var)
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = setting.match(line)
        if match:
            return match.group(1).strip().strip("'\"") or None
    return None


def read_url_file(name: str, access: Access = BENCHMARK_ACCESS) -> str:
    """The access URL from the file ``name`` (``-``: standard input): its first line that is not blank or a
    ``#`` comment, either the URL itself or a ``NERSEMBLE_BENCHMARK_URL = "<url>"`` line (``access``'s variable)
    as in the .env file."""
    if name == "-":
        label, text = "standard input", sys.stdin.read(MAX_URL_FILE_BYTES)
    else:
        path = Path(name)
        label = f"the URL file {path}"
        if not path.is_file():
            raise ConfigError(f"The URL file {path} does not exist or is not a file.")
        check_private_file(path)
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(MAX_URL_FILE_BYTES)
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _setting(access.env_var).match(line)
        url = (match.group(1) if match else line).strip().strip("'\"")
        return _checked(url, f"in {label}")
    raise ConfigError(f"No access URL in {label}; it should hold the URL on its first line.")


def _checked(url: str, source: str) -> str:
    if not re.match(r"^https?://", url):
        raise ConfigError(f"The access URL {source} does not start with http:// or https://; check it.")
    return url.rstrip("/")


def resolve_url(override: str | None = None, access: Access = BENCHMARK_ACCESS) -> str:
    """The base URL: ``override`` (``--url``), else ``access``'s environment variable, else its .env file."""
    variable, settings = access.env_var, access.env_file()
    if override:
        url, source = override, "given with --url"
    elif os.environ.get(variable):
        url, source = os.environ[variable], f"in {variable}"
    else:
        url, source = next(((found, f"in {path}") for path in access.env_files()
                            if (found := _read_env_file(path, variable))), (None, ""))
    if not url:
        raise ConfigError(
            f"No access URL: set {variable} or add a line {variable} = \"<url>\" to {settings} "
            "(the URL comes with your NeRSemble access approval)."
        )
    return _checked(url, source)


@contextlib.contextmanager
def url_env_file(path: Path, urls: Mapping[str, str]) -> Iterator[None]:
    """Hold ``urls`` (environment variable -> URL) in the env file ``path``, one ``NAME="url"`` line each (mode 0600
    from its creation, written atomically) for the block; afterwards remove it, but only if it is still the file
    written here (same inode, size and modification time): a file that replaced it meanwhile is not ours to remove."""
    previous = os.umask(0o077)
    try:
        write_atomic(path, "".join(f'{name}="{url}"\n' for name, url in urls.items()).encode())
        written = os.stat(path)
    finally:
        os.umask(previous)
    try:
        yield
    finally:
        _remove_if_unchanged(path, written)


def _remove_if_unchanged(path: Path, written: os.stat_result) -> None:
    try:
        now = os.lstat(path)
    except OSError:
        return
    if (now.st_dev, now.st_ino, now.st_mtime_ns, now.st_size) == \
            (written.st_dev, written.st_ino, written.st_mtime_ns, written.st_size):
        path.unlink(missing_ok=True)


def redact(text: str, url: str | None) -> str:
    """Replace every occurrence of the URL (and its host part) in ``text`` with a placeholder."""
    if not url:
        return text
    text = text.replace(url, REDACTED)
    host = re.sub(r"^https?://", "", url).split("/", 1)[0]
    secret_path = url.split(host, 1)[1].strip("/") if host in url else ""
    hostname = host.rsplit(":", 1)[0]  # libraries also log the host without its port
    for secret in (secret_path, host, hostname):
        if len(secret) >= 6:
            text = text.replace(secret, REDACTED)
    return text
