"""The quick-start notebook runs: its code cells, in order, as one script in a fresh folder (no Jupyter kernel
is needed to check that the code works; the cells hold plain Python)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


@pytest.mark.timeout(600)
def test_quickstart_notebook_runs_fetch_convert_slice_overlay_export(tmp_path):
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = "\n\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
    script = tmp_path / "quickstart.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run([sys.executable, script.name], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "True 3 valid videos" in result.stdout
    assert (tmp_path / "quickstart" / "overlay.png").stat().st_size > 1000
    assert (tmp_path / "quickstart" / "nersemble.zarr" / "zarr.json").is_file()
