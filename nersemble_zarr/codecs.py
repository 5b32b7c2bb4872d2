"""The zarr v3 codec that implements JPEG XL for the store's image arrays (the named frame codecs that
use it are in ``frame_codecs``).

``zstd`` (the default) is built into zarr, so plain ``xarray``/``zarr`` read the store without this
package. ``jpegxl`` (lossy, small) and ``jpegxl-lossless`` (exact, smaller than zstd) store each frame of
a chunk as a JPEG XL codestream; readers need this package installed (the codec is registered under the
``zarr.codecs`` entry point, so importing it is not necessary).
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.registry import register_codec

from .errors import CodecConfigError, CorruptChunk, NersembleError, shown

JPEGXL_CODEC_NAME = "nersemble_zarr.jpegxl"
_COUNT = struct.Struct("<I")
CONFIGURATION_KEYS = ("distance", "effort", "lossless")
MAX_DISTANCE = 25.0  # libjxl's largest Butteraugli distance
EFFORTS = range(1, 11)  # libjxl 0.11's encoder efforts: 1 (fastest) to 10


def configuration_problem(distance: Any, effort: Any, lossless: Any) -> str | None:
    """What is wrong with a JPEG XL configuration, as the end of a sentence ("its effort is 12; ..."), or None."""
    is_number = isinstance(distance, (int, float)) and not isinstance(distance, bool)
    if not is_number or not 0 <= distance <= MAX_DISTANCE:  # the comparison is False for NaN
        return f"its distance is {shown(distance)}; expected a number from 0 to {MAX_DISTANCE:g}"
    if isinstance(effort, bool) or not isinstance(effort, int) or effort not in EFFORTS:
        return f"its effort is {shown(effort)}; expected an integer from {EFFORTS[0]} to {EFFORTS[-1]}"
    if not isinstance(lossless, bool):
        return f"its lossless flag is {shown(lossless)}; expected true or false"
    return None


@dataclass(frozen=True)
class JpegXLCodec(ArrayBytesCodec):
    """Encode a uint8 chunk (..., H, W) or (..., H, W, 3) as one JPEG XL codestream per frame.

    ``distance`` is JPEG XL's Butteraugli distance (1.0 is visually lossless); ``lossless`` overrides it.
    Encoding and decoding run in a worker thread (``asyncio.to_thread``), as zarr's own codecs do, so
    zarr's event loop stays free to read and write other chunks meanwhile.
    """

    is_fixed_size = False
    distance: float = 1.0
    effort: int = 3
    lossless: bool = False

    def __post_init__(self) -> None:
        problem = configuration_problem(self.distance, self.effort, self.lossless)
        if problem is not None:
            raise CodecConfigError(f"The JPEG XL codec is misconfigured: {problem}.")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JpegXLCodec":
        """The codec of a stored ``{"name": ..., "configuration": {...}}``, refusing a malformed configuration."""
        configuration = data.get("configuration", {})
        where = "The JPEG XL codec configuration in the array's zarr.json"
        if not isinstance(configuration, dict):
            raise CodecConfigError(f"{where} is {shown(configuration)}; expected an object of "
                                   f"{', '.join(CONFIGURATION_KEYS)}.")
        unknown = [key for key in configuration if key not in CONFIGURATION_KEYS]
        if unknown:
            raise CodecConfigError(f"{where} has the unknown key {shown(unknown[0])}; expected only "
                                   f"{', '.join(CONFIGURATION_KEYS)}.")
        settings = {key: configuration.get(key, getattr(cls, key)) for key in CONFIGURATION_KEYS}
        problem = configuration_problem(**settings)
        if problem is not None:
            raise CodecConfigError(f"{where} is invalid: {problem}.")
        return cls(**settings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": JPEGXL_CODEC_NAME,
            "configuration": {"distance": self.distance, "effort": self.effort, "lossless": self.lossless},
        }

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> "JpegXLCodec":
        return self

    def validate(self, *, shape, dtype, chunk_grid) -> None:
        if dtype.to_native_dtype() != np.uint8:
            raise ValueError(f"The JPEG XL codec stores uint8 frames only, not {dtype.to_native_dtype()}.")

    @staticmethod
    def _frame_shape(chunk_shape: tuple[int, ...]) -> tuple[int, ...]:
        # Colour frames end in a channel axis of 3; grey frames end in (H, W).
        return tuple(chunk_shape[-3:]) if chunk_shape[-1] == 3 else tuple(chunk_shape[-2:])

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer:
        import imagecodecs

        array = np.asarray(chunk_array.as_numpy_array())
        frames = array.reshape((-1,) + self._frame_shape(array.shape))
        options = {"lossless": True} if self.lossless else {"distance": self.distance}
        streams = [imagecodecs.jpegxl_encode(np.ascontiguousarray(f), effort=self.effort, **options) for f in frames]
        header = _COUNT.pack(len(streams)) + b"".join(_COUNT.pack(len(s)) for s in streams)
        return chunk_spec.prototype.buffer.from_bytes(header + b"".join(streams))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        import imagecodecs

        data = chunk_bytes.to_bytes()
        frame_shape = self._frame_shape(chunk_spec.shape)
        lengths = _stream_lengths(data, math.prod(chunk_spec.shape) // math.prod(frame_shape))
        offset = _COUNT.size * (len(lengths) + 1)
        frames = []
        for index, length in enumerate(lengths):
            try:
                frame = imagecodecs.jpegxl_decode(data[offset : offset + length])
            except (imagecodecs.JpegxlError, ValueError) as error:  # ValueError: not a JPEG XL codestream
                raise CorruptChunk(f"{_CORRUPT}: frame {index} of the chunk does not decode ({error}).") from error
            if frame.shape != frame_shape or frame.dtype != np.uint8:
                raise CorruptChunk(f"{_CORRUPT}: frame {index} of the chunk decodes to {frame.shape} {frame.dtype}; "
                                   f"the array holds {frame_shape} uint8 frames.")
            frames.append(frame)
            offset += length
        array = np.stack(frames).reshape(chunk_spec.shape)
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(array)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("JPEG XL output size depends on the content.")


_CORRUPT = "A JPEG XL chunk of the store is corrupt (a truncated or overwritten file; convert the array again)"


def _stream_lengths(data: bytes, n_frames: int) -> list[int]:
    """The byte length of each frame's codestream, from a chunk's header (a frame count, then each length)."""
    if len(data) < _COUNT.size:
        raise CorruptChunk(f"{_CORRUPT}: it holds {len(data)} bytes, fewer than its {_COUNT.size}-byte frame count.")
    (count,) = _COUNT.unpack_from(data, 0)
    if count != n_frames:
        raise CorruptChunk(f"{_CORRUPT}: its header lists {count} frames; the array's chunks hold {n_frames}.")
    header = _COUNT.size * (count + 1)
    if len(data) < header:
        raise CorruptChunk(f"{_CORRUPT}: it holds {len(data)} bytes, fewer than its {header}-byte header.")
    lengths = [_COUNT.unpack_from(data, _COUNT.size * (i + 1))[0] for i in range(count)]
    if header + sum(lengths) != len(data):
        raise CorruptChunk(f"{_CORRUPT}: its header lists {header + sum(lengths)} bytes; the chunk holds {len(data)}.")
    return lengths


class _UnretrievedDuplicates(logging.Filter):
    """Drop asyncio's "Task exception was never retrieved" report of this package's own errors. zarr gathers
    the arrays of a group, or the chunks of a read, concurrently and raises the first error to the caller;
    the same error of the others is never retrieved, and asyncio would print it as a traceback after the
    one sentence the caller already got."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, NersembleError) and "never retrieved" in record.getMessage())


logging.getLogger("asyncio").addFilter(_UnretrievedDuplicates())
register_codec(JPEGXL_CODEC_NAME, JpegXLCodec)
