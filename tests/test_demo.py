"""The README's main command: the whole job on the synthetic benchmark, and a rerun that skips everything."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from nersemble_zarr import store as store_module


def test_demo_runs_end_to_end_and_a_rerun_skips_everything(tmp_path):
    work = tmp_path / "demo"
    first = subprocess.run([sys.executable, "-m", "nersemble_zarr.cli", "demo", str(work), "-j", "2"],
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    lines = [line for line in first.stdout.splitlines() if line.startswith("[demo]")]
    assert any("fetch nvs: 29 files: 29 downloaded" in line for line in lines), lines
    assert any("2 sequences meshed" in line for line in lines), lines
    assert any("fetch svfr: 33 files: 33 downloaded" in line for line in lines), lines
    assert any("submission svfr:" in line and "66 valid meshes" in line for line in lines), lines
    assert "http://" not in first.stdout + first.stderr  # the access URL stays secret
    # the closing hint runs as printed in a shell whose PATH has only the system's python (issue 23, point 3)
    hint = next(line for line in lines if "Open the store with: " in line).split("Open the store with: ", 1)[1]
    opened = subprocess.run(["bash", "-c", hint], capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert opened.returncode == 0 and "DataTree" in opened.stdout, opened.stderr

    tree = store_module.open(work / "nersemble.zarr")
    assert {"nvs", "mono_flame_avatar", "svfr"} <= set(tree.children)
    assert "vertices" in tree["mono_flame_avatar/393/EXP-1-head"].dataset
    with zipfile.ZipFile(work / "submission_nvs.zip") as archive:
        assert sorted(archive.namelist()) == [
            "388/GLASSES/cam_222200037.mp4", "388/GLASSES/cam_222200039.mp4", "388/GLASSES/cam_222200046.mp4"]

    again = subprocess.run([sys.executable, "-m", "nersemble_zarr.cli", "demo", str(work), "-j", "2"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "29 already complete" in again.stdout and "0 videos written" in again.stdout
    assert "0 sequences meshed, 2 already done" in again.stdout
