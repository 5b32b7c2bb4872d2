"""``.pcd`` point clouds: the header is parsed and checked against the file's size before open3d reads the
points (a 150-byte file claiming 2e9 points would make open3d allocate them and abort), open3d's own
messages are captured instead of reaching stdout, and after the cast to float32 every point, colour and
normal must be finite (colours within 0..1)."""

from __future__ import annotations

import ctypes
import logging
import os
import re
import struct
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import shown
from .files import regular_file
from .origin import Origin

MAX_POINTS = 20_000_000  # a benchmark point cloud holds well under a million
MAX_HEADER_BYTES = 64 * 2**10
_DATA_KINDS = ("ascii", "binary", "binary_compressed")
_FIELD_SIZES = {"F": (4, 8), "I": (1, 2, 4, 8), "U": (1, 2, 4, 8)}
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PcdHeader:
    """What a PCD header declares: bytes and values per point, point count, data encoding, where data starts."""

    point_bytes: int
    values_per_point: int
    points: int
    data: str
    data_offset: int


def check_pointcloud(path: Path) -> PcdHeader:
    """Parse and check the header of a .pcd file against the size of the file (no points are read)."""
    origin = Origin.local(path, "point cloud")
    size = regular_file(path, origin)
    with open(path, "rb") as handle:
        head = handle.read(MAX_HEADER_BYTES)
    header = _parse_header(origin, head)
    body = size - header.data_offset
    if header.data == "binary":
        needed = header.points * header.point_bytes
    elif header.data == "ascii":
        needed = header.points * header.values_per_point * 2 - 1  # a digit and a separator per value
    else:
        sizes = head[header.data_offset: header.data_offset + 8]
        if len(sizes) < 8:
            raise origin.error("ends inside the sizes of its compressed data")
        compressed, uncompressed = struct.unpack("<II", sizes)
        if uncompressed != header.points * header.point_bytes:
            raise origin.error(f"declares {uncompressed} uncompressed bytes for {header.points} points of "
                               f"{header.point_bytes} bytes")
        needed = 8 + compressed
    if body < needed:
        raise origin.error(f"declares {header.points} points in {needed} bytes of {header.data} data, but holds "
                           f"{body} bytes")
    return header


def read_pointcloud(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points, colours and normals of a .pcd file as float32 (n, 3) arrays (zeros where absent), checked."""
    import open3d  # imported here: heavy, and needs libusb

    header = check_pointcloud(path)
    origin = Origin.local(path, "point cloud")
    with _captured_stdout() as messages:
        cloud = open3d.io.read_point_cloud(str(path), remove_nan_points=False, remove_infinite_points=False)
    points = _float32(origin, "points", np.asarray(cloud.points))
    if len(points) != header.points:
        reason = f" (open3d: {' '.join(messages)[:200]})" if messages else ""
        raise origin.error(f"could not be read{reason}: open3d found {len(points)} of its {header.points} points")
    for message in messages:
        _log.debug("open3d reading %s: %s", path, message)
    colors = _float32(origin, "colors", np.asarray(cloud.colors)) if cloud.has_colors() else np.zeros_like(points)
    normals = _float32(origin, "normals", np.asarray(cloud.normals)) if cloud.has_normals() else np.zeros_like(points)
    if np.any(colors < 0) or np.any(colors > 1):
        raise origin.error("has colours outside 0..1")
    return points, colors, normals


def _parse_header(origin: Origin, head: bytes) -> PcdHeader:
    entries: dict[str, list[str]] = {}
    offset = 0
    while "DATA" not in entries:
        end = head.find(b"\n", offset)
        if end < 0:
            raise origin.error(f"has no PCD header ending in a DATA line within its first {MAX_HEADER_BYTES} bytes")
        line = head[offset:end].decode("ascii", errors="replace").strip()
        offset = end + 1
        if line and not line.startswith("#"):
            key, *values = line.split()
            entries[key.upper()] = values
    try:
        fields = tuple(entries["FIELDS"])
        sizes = [int(v) for v in entries["SIZE"]]
        types = entries["TYPE"]
        counts = [int(v) for v in entries.get("COUNT", ["1"] * len(fields))]
        width, height, points = (_count(entries[key]) for key in ("WIDTH", "HEIGHT", "POINTS"))
        data = entries["DATA"][0].lower()
    except (KeyError, IndexError, ValueError) as error:
        raise origin.error(f"has an incomplete or malformed PCD header ({type(error).__name__}: {error})") from None
    if not {"x", "y", "z"} <= set(fields) or not len(fields) == len(sizes) == len(types) == len(counts):
        raise origin.error(f"has a PCD header whose fields {shown(' '.join(fields))} lack x, y, z or their sizes")
    if any(size not in _FIELD_SIZES.get(kind, ()) for size, kind in zip(sizes, types)) or min(counts) < 1:
        raise origin.error("has a PCD header with field sizes or types open3d does not read")
    if data not in _DATA_KINDS:
        raise origin.error(f"has PCD data of kind {shown(data)}; expected one of {', '.join(_DATA_KINDS)}")
    if width * height != points:
        raise origin.error(f"declares WIDTH {width} x HEIGHT {height}, not its POINTS {points}")
    if not 1 <= points <= MAX_POINTS:
        raise origin.error(f"declares {points} points; a benchmark point cloud holds 1 to {MAX_POINTS}")
    point_bytes = sum(size * count for size, count in zip(sizes, counts))
    return PcdHeader(point_bytes, sum(counts), points, data, offset)


def _count(values: list[str]) -> int:
    if len(values) != 1 or not values[0].isdigit() or len(values[0]) > 12:
        raise ValueError(f"{shown(' '.join(values))} is not a count")
    return int(values[0])


def _float32(origin: Origin, what: str, values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        cast = np.asarray(values, dtype=np.float32).reshape(-1, 3)
    if not np.all(np.isfinite(cast)):
        raise origin.error(f"has NaN or infinite {what} (after the cast to float32)")
    return cast


@contextmanager
def _captured_stdout() -> Iterator[list[str]]:
    """Point file descriptor 1 at a temporary file while open3d runs (it prints its warnings there, with
    terminal colour codes); yields the list that receives the captured lines, escape codes removed."""
    sys.stdout.flush()
    saved = os.dup(1)
    lines: list[str] = []
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        try:
            yield lines
        finally:
            ctypes.CDLL(None).fflush(None)  # open3d's C stdio buffer, before 1 points back at stdout
            os.dup2(saved, 1)
            os.close(saved)
            capture.seek(0)
            text = _ESCAPES.sub("", capture.read().decode("utf-8", errors="replace"))
            lines.extend(line.replace("[Open3D WARNING] ", "").strip() for line in text.splitlines() if line.strip())
