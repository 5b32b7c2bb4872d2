"""Careful reading of zip files that may be hostile: unsafe names, symlinks, bombs, lies about sizes.

Nothing is ever extracted under an entry's name: an entry is copied, with a size cap, into a file the
caller names, after its declared sizes have been checked.
"""

from __future__ import annotations

import contextlib
import re
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import SubmissionError

MAX_ENTRIES = 10_000
# Already-compressed mp4 barely deflates; a far higher ratio means a zip bomb.
MAX_COMPRESSION_RATIO = 20
_RATIO_FLOOR_BYTES = 2**20  # tiny entries may compress well without being bombs
_COPY_BYTES = 2**20
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What zip writers use (the official toolkit stores, zip tools deflate); anything else the server may not read.
ACCEPTED_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "deflate64", 93: "zstandard", 98: "PPMd"}
_LOCAL_HEADER = b"PK\x03\x04"


def open_zip(path: str | Path) -> zipfile.ZipFile:
    """Open ``path`` for reading or raise a SubmissionError saying why it is not a usable zip."""
    path = Path(path)
    if path.is_dir():
        raise SubmissionError(f"The submission {path} is a folder; give the zip file that export-submission wrote "
                              "(a folder of predictions becomes one with `nersemble-zarr export-submission`).")
    if not path.is_file():
        raise SubmissionError(f"The submission {path} does not exist or is not a file.")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise SubmissionError(f"{path} is not a zip file, or it is truncated ({error}).") from error
    except (OSError, ValueError, EOFError) as error:
        raise SubmissionError(f"{path} cannot be read as a zip file ({error}).") from error


def shown(name: str, limit: int = 120) -> str:
    """An entry name safe to print: quoted, escaped and cut to ``limit`` characters."""
    text = repr(name)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unsafe_entry(info: zipfile.ZipInfo) -> str | None:
    """Why an entry could escape or fool an extracting tool (None if its name and type are harmless)."""
    name = info.filename
    if "\\" in name:
        return f"Entry {shown(name)} uses backslashes in its path."
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return f"Entry {shown(name)} is an absolute path."
    if ".." in name.split("/"):
        return f"Entry {shown(name)} climbs out of its folder with '..'."
    if _CONTROL.search(name):
        return f"Entry {shown(name)} has control characters in its name."
    if stat.S_ISLNK(info.external_attr >> 16):
        return f"Entry {shown(name)} is a symbolic link."
    return None


def method_problem(info: zipfile.ZipInfo) -> str | None:
    """Refuse an entry compressed with anything but store or deflate (the only methods every zip reader has)."""
    if info.compress_type in ACCEPTED_METHODS:
        return None
    method = _METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
    return f"Entry {shown(info.filename)} is compressed with {method}; a submission may only store or deflate entries."


def prefix_problem(path: Path, infos: list[zipfile.ZipInfo]) -> str | None:
    """Refuse a zip whose first entry does not start at byte 0 (junk or a self-extractor stub before it)."""
    if not infos:
        return None
    start = min(info.header_offset for info in infos)
    with open(path, "rb") as file:
        head = file.read(len(_LOCAL_HEADER))
    if start == 0 and head == _LOCAL_HEADER:
        return None
    return (
        f"{path} has {start} bytes before its first entry (junk or a self-extractor stub); "
        "the server may not read it: write the zip again without them."
    )


def size_problem(info: zipfile.ZipInfo, max_bytes: int) -> str | None:
    """Refuse entries whose declared size or compression ratio is implausible for an mp4, before reading."""
    if info.flag_bits & 0x1:
        return f"Entry {shown(info.filename)} is encrypted."
    if info.file_size > max_bytes:
        return (
            f"Entry {shown(info.filename)} declares {info.file_size} bytes, "
            f"more than the {max_bytes} a video of it may take."
        )
    if info.file_size > _RATIO_FLOOR_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        return (
            f"Entry {shown(info.filename)} would expand {info.file_size / max(info.compress_size, 1):.0f}-fold; "
            "refusing a likely zip bomb."
        )
    return None


def copy_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: BinaryIO, max_bytes: int) -> str | None:
    """Copy at most ``max_bytes`` of an entry into ``target``; return a problem sentence or None."""
    copied = 0
    try:
        with archive.open(info) as source:
            while chunk := source.read(_COPY_BYTES):
                copied += len(chunk)
                if copied > max_bytes:
                    return f"Entry {shown(info.filename)} holds more than {max_bytes} bytes."
                target.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as error:
        return f"Entry {shown(info.filename)} cannot be read ({type(error).__name__}: {error}); the zip is damaged."
    return None


@contextlib.contextmanager
def entry_copy(path: Path, name: str, max_bytes: int) -> Iterator[Path]:
    """A private temporary copy of the zip entry ``name`` (size-checked and capped), removed afterwards."""
    with open_zip(path) as archive, tempfile.TemporaryDirectory(prefix="nersemble-entry-") as scratch:
        info = archive.getinfo(name)
        target = Path(scratch) / "entry.mp4"
        problem = size_problem(info, max_bytes)
        if problem is None:
            with open(target, "wb") as handle:
                problem = copy_entry(archive, info, handle, max_bytes)
        if problem is not None:
            raise SubmissionError(f"{path}: {problem}")
        yield target
