"""Make docs/images/preview-*.png: the pictures of docs/preview.md, from a small synthetic benchmark.

    python docs/images/make_preview_figures.py

Generates NVS 388 and mono 393 EXP-1-head at half resolution (2 frames), converts them, writes stand-in
FLAME meshes (NOT FLAME), and draws the contact sheets and the camera rig with the library's preview
functions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from nersemble_zarr.convert import convert
from nersemble_zarr.flame import FlameModel, write_standin_flame
from nersemble_zarr.flame.store import find_flame_sequences, write_sequence_meshes
from nersemble_zarr.preview import write_preview, write_rig_preview
from nersemble_zarr.synthetic import SyntheticConfig, generate

IMAGES = Path(__file__).parent
CONFIG = SyntheticConfig(
    scale=0.5, n_frames=2, nvs_participants=(388,), mono_participants=(393,),
    mono_train_sequences=("EXP-1-head",), mono_test_sequences=(), n_points=5000,
)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root, store, flame_dir = Path(tmp) / "root", Path(tmp) / "store.zarr", Path(tmp) / "flame"
        generate(root, CONFIG, workers=2)
        convert(root, store, workers=2)
        write_standin_flame(flame_dir, seed=0)
        model = FlameModel.load(flame_dir, device="cpu")
        for target in find_flame_sequences(store):
            write_sequence_meshes(store, target, model)
        write_preview(store, IMAGES / "preview-sheet-nvs.png", 388, tile_width=140)
        write_preview(store, IMAGES / "preview-sheet-mono.png", 393)
        write_rig_preview(store, IMAGES / "preview-rig-nvs.png", 388)


if __name__ == "__main__":
    main()
