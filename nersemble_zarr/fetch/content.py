"""Is a downloaded body the file it claims to be? Checks by kind (file suffix) before it gets a final name.

A size that matches the server's is not proof: an expired access link or a captive portal answers with
a web page, a misconfigured server with a compressed body, a server without Content-Length with a body cut
short. ``signature_problem`` looks at a file's first bytes (cheap: used before skipping a local file as
complete); ``structure_problem`` checks the whole file's own structure (mp4 boxes up to the end with a moov
box, JSON that parses, a zip whose entries and central directory fit the file, a PCD whose point data
has the size its header declares). Both return a short phrase ("it is ...") or None.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

HEAD_BYTES = 1024  # what signature checks and web page sniffing read
WEB_PAGE_PROBLEM = "it is a web page"
_PCD_HEADER_LIMIT = 64 << 10
_PCD_SIZES = {"1", "2", "4", "8"}
_ZIP_LOCAL, _ZIP_END = b"PK\x03\x04", b"PK\x05\x06"  # a local file header; the end of the central directory


def read_head(path: Path) -> bytes:
    """The first HEAD_BYTES bytes of ``path``."""
    with open(path, "rb") as handle:
        return handle.read(HEAD_BYTES)


def looks_like_web_page(head: bytes) -> bool:
    """True when the first bytes of a body are HTML (no benchmark file starts with ``<``)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(b"<") and any(tag in text for tag in (b"<html", b"<!doctype", b"<head", b"<body"))


def signature_problem(name: str, head: bytes) -> str | None:
    """What is wrong with the first bytes of a file named ``name`` for its kind, or None."""
    if looks_like_web_page(head):
        return WEB_PAGE_PROBLEM
    suffix = Path(name).suffix
    if suffix == ".mp4" and head[4:8] != b"ftyp":
        return "it is not an mp4 file"
    if suffix == ".json" and not head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        return "it is not a JSON document"
    if suffix == ".npz" and head[:4] not in (_ZIP_LOCAL, _ZIP_END):
        return "it is not an npz (zip) file"
    if suffix == ".pcd" and not head.startswith((b"#", b"VERSION", b"FIELDS")):
        return "it is not a PCD file"
    return None


def structure_problem(path: Path, name: str) -> str | None:
    """What is wrong with the whole file at ``path`` (named ``name`` on the server) for its kind, or None."""
    problem = signature_problem(name, read_head(path))
    if problem:
        return problem
    check = {".mp4": _mp4_problem, ".json": _json_problem, ".npz": _zip_problem, ".pcd": _pcd_problem}.get(
        Path(name).suffix)
    return check(path) if check else None


def _mp4_problem(path: Path) -> str | None:
    """Top-level ISO BMFF boxes must tile the file exactly, and one of them must be ``moov``."""
    size = path.stat().st_size
    kinds = []
    with open(path, "rb") as handle:
        position = 0
        while position < size:
            handle.seek(position)
            header = handle.read(16)
            if len(header) < 8:
                return f"it is cut short (a box header at byte {position} is incomplete)"
            length, kind = struct.unpack(">I4s", header[:8])
            if length == 1:
                if len(header) < 16:
                    return f"it is cut short (a box header at byte {position} is incomplete)"
                length = struct.unpack(">Q", header[8:16])[0]
            elif length == 0:  # the last box runs to the end of the file
                length = size - position
            if length < 8 or not kind.isascii() or not kind.decode("ascii").isprintable():
                return f"it is not a valid mp4 file (a malformed box at byte {position})"
            if position + length > size:
                return f"it is cut short (its {kind.decode('ascii')} box ends after byte {size})"
            kinds.append(kind)
            position += length
    return None if b"moov" in kinds else "it has no moov box (cut short, or not a finished mp4)"


def _json_problem(path: Path) -> str | None:
    try:
        json.loads(path.read_bytes().decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return "it is not valid JSON (cut short, or another kind of file)"
    return None


def _zip_problem(path: Path) -> str | None:
    """The central directory must end the file (no comment beyond its stated length) and every entry lie inside it."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            comment = archive.comment
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, struct.error, EOFError):
        return "it is not a complete npz (zip) file (cut short, or another kind of file)"
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 22 - len(comment)))
        end = handle.read(22)
    if end[:4] != _ZIP_END or int.from_bytes(end[20:22], "little") != len(comment):
        return "it is not a complete npz (zip) file (bytes follow its central directory)"
    for entry in entries:
        if entry.header_offset + 30 + len(entry.filename) + entry.compress_size > size:
            return f"it is cut short (its entry {entry.filename[:40]!r} ends past the file)"
    return None


def _pcd_problem(path: Path) -> str | None:
    """The point data after the header must have the size the header declares (POINTS x the bytes per point)."""
    with open(path, "rb") as handle:
        header = handle.read(_PCD_HEADER_LIMIT)
    fields: dict[str, list[str]] = {}
    offset = 0
    for line in header.split(b"\n"):
        offset += len(line) + 1
        words = line.decode("ascii", "replace").split()
        if not words or words[0].startswith("#"):
            continue
        fields[words[0].upper()] = words[1:]
        if words[0].upper() == "DATA":
            break
    else:
        return "it is not a PCD file (no DATA line in its header)"
    try:
        sizes, counts = fields["SIZE"], fields.get("COUNT", ["1"] * len(fields["SIZE"]))
        points = _count(fields["POINTS"][0])
        mode = fields["DATA"][0].lower()
    except (KeyError, IndexError, ValueError):
        return "it is not a PCD file (its header lacks SIZE, POINTS or DATA, or has a bad number)"
    if not sizes or len(counts) != len(sizes) or not set(sizes) <= _PCD_SIZES:
        return "it is not a PCD file (its SIZE and COUNT lines do not match)"
    try:
        point_bytes = sum(int(s) * _count(c) for s, c in zip(sizes, counts))
    except ValueError:
        return "it is not a PCD file (its COUNT line has a bad number)"
    data = path.stat().st_size - offset
    if mode == "binary":
        expected = points * point_bytes
    elif mode == "binary_compressed":
        with open(path, "rb") as handle:
            handle.seek(offset)
            sizes_field = handle.read(8)
        if len(sizes_field) < 8:
            return "it is cut short (its compressed point data is missing)"
        compressed, uncompressed = struct.unpack("<II", sizes_field)
        if uncompressed != points * point_bytes:
            return "it is not a valid PCD file (its compressed data does not hold POINTS points)"
        expected = 8 + compressed
    elif mode == "ascii":
        return _pcd_ascii_problem(path, offset, points)
    else:
        return f"it is not a PCD file (unknown DATA {mode[:20]!r})"
    if data != expected:
        return f"it holds {data} bytes of point data where its header declares {expected}"
    return None


def _pcd_ascii_problem(path: Path, offset: int, points: int) -> str | None:
    with open(path, "rb") as handle:
        handle.seek(offset)
        lines = sum(1 for line in handle if line.strip())
    return None if lines == points else f"it holds {lines} points where its header declares {points}"


def _count(word: str) -> int:
    """A non-negative whole number of at most 12 digits (a header field), else ValueError."""
    if not word.isdigit() or len(word) > 12:
        raise ValueError(word)
    return int(word)
