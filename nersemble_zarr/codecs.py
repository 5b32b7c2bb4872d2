"""The zarr v3 codec that implements JPEG XL for the store's image arrays (the named frame codecs that
use it are in ``frame_codecs``).

``zstd`` (the default) is built into zarr, so plain ``xarray``/``zarr`` read the store without this
package. ``jpegxl`` (lossy, small) and ``jpegxl-lossless`` (exact, smaller than zstd) store each frame of
a chunk as a JPEG XL codestream; readers need this package installed (the codec is registered under the
``zarr.codecs`` entry point, so importing it is not necessary).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.registry import register_codec


JPEGXL_CODEC_NAME = "nersemble_zarr.jpegxl"
_COUNT = struct.Struct("<I")


@dataclass(frozen=True)
class JpegXLCodec(ArrayBytesCodec):
    """Encode a uint8 chunk (..., H, W) or (..., H, W, 3) as one JPEG XL codestream per frame.

    ``distance`` is JPEG XL's Butteraugli distance (1.0 is visually lossless); ``lossless`` overrides it.
    """

    is_fixed_size = False
    distance: float = 1.0
    effort: int = 3
    lossless: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JpegXLCodec":
        return cls(**data.get("configuration", {}))

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
        (count,) = _COUNT.unpack_from(data, 0)
        lengths = [_COUNT.unpack_from(data, 4 * (i + 1))[0] for i in range(count)]
        offset = 4 * (count + 1)
        frames = []
        for length in lengths:
            frames.append(imagecodecs.jpegxl_decode(data[offset : offset + length]))
            offset += length
        array = np.stack(frames).reshape(chunk_spec.shape).astype(np.uint8, copy=False)
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(array)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer:
        return self._encode_sync(chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return self._decode_sync(chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("JPEG XL output size depends on the content.")


register_codec(JPEGXL_CODEC_NAME, JpegXLCodec)
