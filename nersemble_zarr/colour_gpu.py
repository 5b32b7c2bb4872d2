"""The colour correction on a torch device (a GPU), when a caller asks for one: the same arithmetic as the CPU
kernel (``colour_kernel``), as a few torch operations per chunk of pixels."""

from __future__ import annotations

import functools
import sys
import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .colour import MonomialPlan

CHUNK_PIXELS = 1 << 22
_LEVEL_BYTE = 2 if sys.byteorder == "little" else 1  # the byte of an int32 that holds bits 16..23


class DeviceCorrection:
    """One matrix's monomial plan (``colour.MonomialPlan``) on one torch device."""

    def __init__(self, plan: "MonomialPlan", device: torch.device) -> None:
        self.device, self.factors = device, plan.factors
        self.matrix = torch.as_tensor(plan.matrix, device=device)  # (3, monomials) float32
        self.offset = torch.as_tensor(plan.offset[:, None], device=device)  # (3, 1)
        self.decode, self.encode = _device_tables(device)

    @torch.inference_mode()
    def __call__(self, frame: np.ndarray, out: np.ndarray, as_float: bool) -> None:
        """Correct one uint8 (H, W, 3) frame into ``out`` (uint8 levels, or float64 sRGB values)."""
        pixels, corrected = _tensor(np.ascontiguousarray(frame).reshape(-1, 3)), torch.from_numpy(out.reshape(-1, 3))
        for start in range(0, len(pixels), CHUNK_PIXELS):
            planes = pixels[start:start + CHUNK_PIXELS].to(self.device).t().to(torch.int32)
            monomials = torch.empty((len(self.factors), planes.shape[1]), dtype=torch.float32, device=self.device)
            torch.index_select(self.decode, 0, planes.reshape(-1), out=monomials[:3].view(-1))
            for k in range(3, len(self.factors)):
                torch.mul(monomials[self.factors[k, 0]], monomials[self.factors[k, 1]], out=monomials[k])
            linear = torch.addmm(self.offset, self.matrix, monomials)
            encoded = srgb_encode_float(linear) if as_float else srgb_encode_uint8(linear, self.encode)
            corrected[start:start + CHUNK_PIXELS] = torch.stack(encoded.unbind(0), dim=1).cpu()


def srgb_encode_float(linear: torch.Tensor) -> torch.Tensor:
    """sRGB encoding of linear light as ``colour.cctf_encoding`` (IEC 61966-2-1), unclipped: the linear segment
    below 0.0031308, negative values included."""
    curve = linear.clamp_min(0.0031308).pow_(1 / 2.4).mul_(1.055).sub_(0.055)
    return torch.where(linear <= 0.0031308, linear * 12.92, curve)


def srgb_encode_uint8(linear: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """uint8 of clip(255 * sRGB(linear), 0, 255) truncated, by ``colour.srgb_encoding_table``: a view into an
    int32 tensor the shape of ``linear``, whose memory is overwritten. Negative values (and -0.0) clamp to the
    smallest positive float32 (level 0), values from 2.0 (and positive NaN) to the largest below 2.0 (255)."""
    from .colour import ENCODING_SHIFT

    largest = (len(table) << ENCODING_SHIFT) - 1  # the bit pattern of the largest float32 the table covers
    bits = linear.view(torch.int32).clamp_(1, largest)  # float32 order is int32 order for positive values
    packed = table.index_select(0, (bits >> ENCODING_SHIFT).view(-1)).view(bits.shape)
    packed += bits  # the level in bits 16..23
    return packed.view(torch.uint8).unflatten(-1, (-1, 4))[..., _LEVEL_BYTE]


@functools.lru_cache(maxsize=4)
def _device_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The float32 decoding table and the int32 encoding table on ``device``, copied there once."""
    from .colour import srgb_decoding_table, srgb_encoding_table

    return (torch.as_tensor(srgb_decoding_table(), dtype=torch.float32, device=device),
            torch.as_tensor(srgb_encoding_table(), device=device))


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor sharing ``array``'s memory (read only here), without torch's warning about read-only arrays."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)
