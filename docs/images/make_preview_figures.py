"""Make docs/images/preview-*.png: the pictures of docs/preview.md, from a small synthetic benchmark.

    python docs/images/make_preview_figures.py

Generates NVS 388 and mono 393 EXP-1-head at half resolution (2 frames), converts them, writes stand-in
FLAME meshes (NOT FLAME), and draws the contact sheets and the camera rig with the library's preview
functions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from figure_store import figure_config, meshed_store
from nersemble_zarr.preview import write_preview, write_rig_preview

IMAGES = Path(__file__).parent
CONFIG = figure_config(n_frames=2)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = meshed_store(Path(tmp), CONFIG)
        write_preview(store, IMAGES / "preview-sheet-nvs.png", 388, tile_width=140)
        write_preview(store, IMAGES / "preview-sheet-mono.png", 393)
        write_rig_preview(store, IMAGES / "preview-rig-nvs.png", 388)


if __name__ == "__main__":
    main()
