"""The named frame codecs of the store (its codec registry): how the image arrays of a sequence are stored.

Importing this module is cheap (zarr is imported only to build an encoding), so the command line can list
the choices without loading zarr. Add a codec here: a ``FrameCodec`` entry and its ``zarr_encoding``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, shown


@dataclass(frozen=True)
class FrameCodec:
    """A named choice of how frames are stored: the serializer and compressors of a zarr v3 array."""

    name: str
    lossless: bool
    description: str
    needs_package: bool

    def zarr_encoding(self) -> dict[str, Any]:
        """Keyword arguments for the array's serializer/compressors (inside the shard)."""
        from zarr.codecs import BloscCodec, ZstdCodec

        from .codecs import JpegXLCodec

        if self.name == "zstd":
            return {"serializer": "auto", "compressors": [ZstdCodec(level=1)]}
        if self.name == "lz4":
            return {"serializer": "auto",
                    "compressors": [BloscCodec(cname="lz4", clevel=1, shuffle="noshuffle", typesize=1)]}
        if self.name == "jpegxl-lossless":
            return {"serializer": JpegXLCodec(lossless=True, effort=1), "compressors": []}
        return {"serializer": JpegXLCodec(distance=1.0, effort=3), "compressors": []}


FRAME_CODECS: dict[str, FrameCodec] = {
    codec.name: codec
    for codec in (
        FrameCodec("zstd", True, "lossless, exact, readable by plain zarr/xarray (default)", False),
        FrameCodec("lz4", True, "lossless, exact, plain zarr (blosc-lz4): faster to write and read, larger", False),
        FrameCodec("jpegxl-lossless", True, "lossless, exact, smaller than zstd, needs nersemble_zarr to read", True),
        FrameCodec("jpegxl", False, "lossy JPEG XL at distance 1.0 (visually lossless), smallest, needs nersemble_zarr to read", True),
    )
}
DEFAULT_FRAME_CODEC = "zstd"


def frame_codec(name: str) -> FrameCodec:
    """Look up a frame codec by name or raise a ConfigError listing the choices."""
    if name not in FRAME_CODECS:
        raise ConfigError(f"Unknown codec {shown(name)}; expected one of {', '.join(FRAME_CODECS)}.")
    return FRAME_CODECS[name]

