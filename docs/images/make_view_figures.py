"""Make docs/images/view-*.png: screenshots of Rerun's web viewer showing `nersemble-zarr view` recordings.

    python docs/images/make_view_figures.py      # needs the `view` extra and Chromium (apt-get install chromium)

Generates NVS 388 and mono 393 EXP-1-head at half resolution (6 frames), converts them, writes stand-in FLAME
meshes (NOT FLAME) and resolution level 2, logs each with ``nersemble-zarr view``, serves the recording with
``--serve``'s server and photographs the page in headless Chromium (software WebGL: SwiftShader), the way
tests/test_view.py does.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from figure_store import figure_config, meshed_store
from nersemble_zarr.levels import downsample
from nersemble_zarr.view import serve_web, view

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from browser import screenshot  # noqa: E402

IMAGES = Path(__file__).parent
CONFIG = figure_config(n_frames=6)
READY_JS = ("(() => { const c = document.getElementById('the_canvas_id'); "
            "return !!c && c.classList.contains('visible'); })()")


def photograph(rrd: Path, output: Path) -> None:
    with serve_web(rrd) as served:
        page = screenshot(served.url, output, ready_js=READY_JS, settle_s=90, size=(1400, 800))
    print(f"{output.name}: ready {page['ready']}, WebGL2 {page['webgl2']}, requests {page['sent']}, "
          f"blocked {page['blocked']}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = meshed_store(Path(tmp), CONFIG)
        downsample(store, [2], workers=2)
        nvs = view(store, "nvs", 388, level=2, output=Path(tmp) / "nvs.rrd")
        mono = view(store, "mono_flame_avatar", 393, "EXP-1-head", output=Path(tmp) / "mono.rrd")
        photograph(nvs, IMAGES / "view-nvs.png")
        photograph(mono, IMAGES / "view-mono.png")


if __name__ == "__main__":
    main()
