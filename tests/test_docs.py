"""The documentation site builds with `mkdocs build --strict`: no broken links, no page left out of the nav,
and an API reference generated from docstrings that mkdocstrings can read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings_handlers.python")

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_docs_site_builds_strictly_with_the_api_reference(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reference = (site / "reference" / "training" / "index.html").read_text()
    assert 'id="nersemble_zarr.torch_dataset.FrameDataset"' in reference  # rendered from the docstrings
    assert "Single frames (one camera, one timestep)" in reference
    assert (site / "index.html").is_file() and (site / "scaling" / "index.html").is_file()
