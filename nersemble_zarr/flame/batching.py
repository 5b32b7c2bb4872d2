"""Pick the torch device and plan batches of timesteps (small pure helpers, no evaluation here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import FlameError, shown

if TYPE_CHECKING:
    import torch

# Bytes of device memory one timestep needs during evaluation (vertices, pose correctives and the
# per-vertex 3x4 skinning transforms in float32, with room for temporaries).
BYTES_PER_TIMESTEP = 5023 * 4 * 48
CPU_BATCH_SIZE = 128
MAX_CUDA_BATCH_SIZE = 4096
CUDA_MEMORY_FRACTION = 0.5


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for ``name``: "auto" (cuda when available, else cpu), "cpu", "cuda" or "cuda:N"."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise FlameError(f"Unknown device {shown(name)}; expected auto, cpu, cuda or cuda:N.") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FlameError(f"Device {shown(name)} was requested but torch sees no CUDA GPU; use --device cpu or auto.")
    if device.type not in ("cpu", "cuda"):
        raise FlameError(f"Device {shown(name)} is not supported; expected auto, cpu, cuda or cuda:N.")
    return device


def default_batch_size(device: torch.device) -> int:
    """Timesteps per batch: a fixed cache-friendly size on CPU, half the free memory on a GPU."""
    if device.type != "cuda":
        return CPU_BATCH_SIZE
    import torch

    free_bytes, _ = torch.cuda.mem_get_info(device)
    return int(max(1, min(MAX_CUDA_BATCH_SIZE, free_bytes * CUDA_MEMORY_FRACTION // BYTES_PER_TIMESTEP)))


def plan_timestep_batches(n_timesteps: int, batch_size: int) -> list[slice]:
    """Consecutive slices of at most ``batch_size`` timesteps covering ``range(n_timesteps)``."""
    if batch_size < 1:
        raise FlameError(f"Batch size {batch_size} is invalid; expected a positive number of timesteps.")
    return [slice(start, min(start + batch_size, n_timesteps)) for start in range(0, n_timesteps, batch_size)]


def merge_consecutive(chunks: list[slice], max_timesteps: int) -> list[slice]:
    """Join adjacent timestep slices into regions of at most ``max_timesteps`` (at least one slice each)."""
    regions: list[slice] = []
    for chunk in chunks:
        last = regions[-1] if regions else None
        if last is not None and last.stop == chunk.start and chunk.stop - last.start <= max_timesteps:
            regions[-1] = slice(last.start, chunk.stop)
        else:
            regions.append(chunk)
    return regions
