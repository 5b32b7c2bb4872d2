"""The small store behind the docs' figures: a synthetic benchmark (NVS 388, mono 393 EXP-1-head at half
resolution) generated, converted and meshed with the FLAME stand-in (NOT FLAME)."""

from __future__ import annotations

from pathlib import Path

from nersemble_zarr.convert import convert
from nersemble_zarr.flame import FlameModel, write_standin_flame
from nersemble_zarr.flame.store import find_flame_sequences, write_sequence_meshes
from nersemble_zarr.synthetic import SyntheticConfig, generate


def figure_config(n_frames: int) -> SyntheticConfig:
    """NVS 388 and mono 393 EXP-1-head at half resolution, ``n_frames`` frames each."""
    return SyntheticConfig(
        scale=0.5, n_frames=n_frames, nvs_participants=(388,), mono_participants=(393,),
        mono_train_sequences=("EXP-1-head",), mono_test_sequences=(), n_points=5000,
    )


def meshed_store(folder: Path, config: SyntheticConfig) -> Path:
    """Generate ``config`` under ``folder``, convert it into ``folder/store.zarr`` and store stand-in meshes."""
    root, store, flame_dir = folder / "root", folder / "store.zarr", folder / "flame"
    generate(root, config, workers=2)
    convert(root, store, workers=2)
    write_standin_flame(flame_dir, seed=0)
    model = FlameModel.load(flame_dir, device="cpu")
    for target in find_flame_sequences(store):
        write_sequence_meshes(store, target, model)
    return store
