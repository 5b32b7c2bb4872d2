"""Benchmark-shaped files around arbitrary payloads, for load and fault tests that need many large files fast.

fetch checks every body's structure for its kind before giving it a final name, so a test or benchmark
that serves random bytes wraps them: ``mp4_around`` in top-level ISO BMFF boxes (ftyp, mdat holding the
payload, moov), ``pcd_around`` in a binary PCD header whose point count covers the payload. Neither holds
a decodable video or meaningful points; they are for moving bytes, not for convert.
"""

from __future__ import annotations

import struct

from .pointcloud import PCD_HEADER

_POINT_BYTES = 28  # seven 4-byte fields per point in PCD_HEADER


def _box(kind: bytes, content: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(content), kind) + content


def mp4_around(payload: bytes) -> bytes:
    """An mp4-shaped file: ftyp, an mdat box holding ``payload``, and a moov box."""
    return _box(b"ftyp", b"isom\0\0\x02\0isomiso2") + _box(b"mdat", payload) + _box(b"moov", _box(b"free", b""))


def pcd_around(payload: bytes) -> bytes:
    """A binary PCD whose point data is ``payload`` cut to whole points."""
    points = len(payload) // _POINT_BYTES
    return PCD_HEADER.format(n=points).encode("ascii") + payload[: points * _POINT_BYTES]
