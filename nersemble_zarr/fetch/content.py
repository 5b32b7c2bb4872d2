"""Is a downloaded body the file it claims to be? Checks by kind (file suffix) before it gets a final name.

A size that matches the server's is not proof: an expired access link or a captive portal answers with
a web page, a misconfigured server with a compressed body, a server without Content-Length with a body cut
short. ``signature_problem`` looks at a file's first bytes (cheap: used before skipping a local file as
complete); ``structure_problem`` checks the whole file's own structure (mp4 boxes up to the end with a moov
box, complete JSON syntax, a zip whose entries and central directory fit the file, a PCD whose header
``inputs.pointcloud`` accepts and whose binary point data has exactly the declared size, a CSV table of UTF-8
text whose rows all have the header's fields and whose last line is complete, a JPEG whose marker segments fit
the file and which ends with its end-of-image marker). Both return a short phrase ("it is ...") or None.
Limits and meaning (nesting depth, number sizes, keys, timesteps) are for the readers in
``nersemble_zarr.inputs``, which refuse such a file with their own sentence.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import struct
import zipfile
from pathlib import Path

from ..errors import InputDataError
from ..inputs.jsontext import MAX_JSON_BYTES
from ..inputs.pointcloud import check_pointcloud

HEAD_BYTES = 1024  # what signature checks and web page sniffing read
# The most bytes a file of each small kind may have, whatever a server announces (the benchmark's are far smaller:
# metadata.json and camera_params.json a few KiB, a tracking .npz a few MiB, an SVFR rgb.png about 1 MiB; the
# dataset's metadata_sequences.csv some hundred KiB, a full-size background .jpg a few MiB).
SIZE_CEILINGS = {".json": MAX_JSON_BYTES, ".csv": MAX_JSON_BYTES, ".npz": 256 << 20, ".png": 64 << 20,
                 ".jpg": 64 << 20, ".jpeg": 64 << 20}
WEB_PAGE_PROBLEM = "it is a web page"
_ZIP_LOCAL, _ZIP_END = b"PK\x03\x04", b"PK\x05\x06"  # a local file header; the end of the central directory
_JPEG_START, _JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"  # start of image (and the next marker's FF); end of image
_JPEG_SCAN = 0xDA  # start of scan: the entropy-coded image data follows its header
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start of frame (baseline, progressive, ...)
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])  # markers without a length: TEM, RST0-7
_CSV_HEADER = "ID"  # the first column of both dataset CSVs
_NOT_CSV = "it is not a CSV table (UTF-8 text whose header line starts with ID)"


def read_head(path: Path) -> bytes:
    """The first HEAD_BYTES bytes of ``path``."""
    with open(path, "rb") as handle:
        return handle.read(HEAD_BYTES)


def size_ceiling(name: str) -> int | None:
    """The most bytes a file named ``name`` may have (None for the large kinds: videos and point clouds)."""
    return SIZE_CEILINGS.get(Path(name).suffix.lower())


def looks_like_web_page(head: bytes) -> bool:
    """True when the first bytes of a body are HTML (no benchmark file starts with ``<``)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(b"<") and any(tag in text for tag in (b"<html", b"<!doctype", b"<head", b"<body"))


def signature_problem(name: str, head: bytes) -> str | None:
    """What is wrong with the first bytes of a file named ``name`` for its kind, or None."""
    if looks_like_web_page(head):
        return WEB_PAGE_PROBLEM
    suffix = Path(name).suffix.lower()
    if suffix == ".mp4" and head[4:8] != b"ftyp":
        return "it is not an mp4 file"
    if suffix == ".json" and not head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        return "it is not a JSON document"
    if suffix == ".npz" and head[:4] not in (_ZIP_LOCAL, _ZIP_END):
        return "it is not an npz (zip) file"
    if suffix == ".pcd" and not head.startswith((b"#", b"VERSION", b"FIELDS")):
        return "it is not a PCD file"
    if suffix == ".csv" and not _csv_head_ok(head):
        return _NOT_CSV
    if suffix in (".jpg", ".jpeg") and not head.startswith(_JPEG_START):
        return "it is not a JPEG file"
    return None


def _csv_head_ok(head: bytes) -> bool:
    """UTF-8 text without NUL whose first line is ``ID`` or starts with ``ID,`` (the head may end mid-character)."""
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    first = text.split("\n", 1)[0].rstrip("\r")
    return "\0" not in text and (first == _CSV_HEADER or first.startswith(_CSV_HEADER + ","))


def structure_problem(path: Path, name: str) -> str | None:
    """What is wrong with the whole file at ``path`` (named ``name`` on the server) for its kind, or None."""
    problem = signature_problem(name, read_head(path))
    if problem:
        return problem
    check = {".mp4": _mp4_problem, ".json": _json_problem, ".npz": _zip_problem, ".pcd": _pcd_problem,
             ".csv": _csv_problem, ".jpg": _jpeg_problem, ".jpeg": _jpeg_problem}.get(Path(name).suffix.lower())
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
    """Complete JSON syntax only: numbers and objects are not built (the readers apply the limits)."""
    if path.stat().st_size > MAX_JSON_BYTES:
        return None  # the reader refuses it by its size
    try:
        json.loads(path.read_bytes().decode("utf-8-sig"), parse_int=len, parse_float=len, parse_constant=len,
                   object_pairs_hook=len)
    except RecursionError:
        return None  # nested deeper than Python recurses: the reader refuses it by its depth
    except ValueError:
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
    """The header must fit the file; binary point data must have exactly the declared size."""
    try:
        header = check_pointcloud(path)
    except InputDataError:
        return "it is not a complete PCD file (its header does not fit the file: cut short, or another kind of file)"
    data = path.stat().st_size - header.data_offset
    if header.data == "binary" and data != header.points * header.point_bytes:
        return f"it holds {data} bytes of point data where its header declares {header.points * header.point_bytes}"
    return None


def _csv_problem(path: Path) -> str | None:
    """UTF-8 text without NUL, every row with the header's number of fields, the last line ended by a line break.

    A table cut short mid-line would still parse, with its last participant's cells missing (read as "absent"):
    so the last line must be complete, as pandas and the csv module write it.
    """
    if path.stat().st_size > MAX_JSON_BYTES:
        return None  # refused by its size ceiling
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        return _NOT_CSV
    if "\0" in text:
        return _NOT_CSV
    if not text.endswith("\n"):
        return "it is cut short (its last line has no line break)"
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error:
        return "it is not a valid CSV table (a malformed quoted field)"
    widths = {len(row) for row in rows if row}
    if len(widths) > 1:
        return f"it is not a valid CSV table (its rows have {' or '.join(map(str, sorted(widths)))} fields)"
    return None


def _jpeg_problem(path: Path) -> str | None:
    """Marker segments from the start of image to the first scan must fit the file, a frame header must come
    before that scan, and the file must end with the end-of-image marker, as every JPEG writer ends it (libjpeg
    behind PIL and OpenCV): a file cut inside its image data, or bytes appended after it, is refused."""
    size = path.stat().st_size
    frame = False
    with open(path, "rb") as handle:
        position = 2  # after the start-of-image marker
        while True:
            handle.seek(position)
            header = handle.read(4)
            if len(header) < 2:
                return f"it is cut short (a marker at byte {position} is incomplete)"
            if header[0] != 0xFF:
                return f"it is not a valid JPEG file (no marker at byte {position})"
            kind = header[1]
            if kind == 0xFF:  # a fill byte before a marker
                position += 1
                continue
            if kind in _JPEG_STANDALONE:
                position += 2
                continue
            if kind == 0xD9:
                return "it is not a valid JPEG file (it ends before its image data)"
            if len(header) < 4:
                return f"it is cut short (a marker at byte {position} is incomplete)"
            length = int.from_bytes(header[2:4], "big")
            if length < 2:
                return f"it is not a valid JPEG file (a malformed segment at byte {position})"
            if position + 2 + length > size:
                return f"it is cut short (its segment at byte {position} ends past the file)"
            position += 2 + length
            frame = frame or kind in _JPEG_FRAMES
            if kind == _JPEG_SCAN:
                break
        if not frame:
            return "it is not a valid JPEG file (its image data has no frame header)"
        handle.seek(max(position, size - 2))
        end = handle.read(2)
    if end != _JPEG_END:
        return "it is cut short, or has bytes after its image (it does not end with the JPEG end-of-image marker)"
    return None
