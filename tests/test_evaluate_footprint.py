"""What a process that only evaluates loads: not the submission writers' PyAV, scipy and FLAME code, not dask
for local threads, and not xarray (with pandas) for a plan read from zarr (each is tens of MiB of resident
memory or a tenth to a third of a second of a fresh process's run)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from test_evaluate import NVS, NVS_CAMERAS, noisy, truth

SCRIPT = """
import json, sys
import numpy as np
from nersemble_zarr.evaluation import evaluate
frames = np.load(sys.argv[2])
key = (int(sys.argv[3]), sys.argv[4], sys.argv[5])
result = evaluate({key: frames}, sys.argv[1], "nvs", lpips=False, jod=False, device="cpu", workers=2)
heavy = ("av", "scipy.optimize", "nersemble_zarr.flame", "distributed", "dask", "xarray", "pandas")
print(json.dumps({"frames": len(result.videos[0].frames), "loaded": [m for m in heavy if m in sys.modules]}))
"""


def test_evaluating_loads_neither_the_submission_writers_nor_dask_nor_xarray(converted, tmp_path):
    key = (*NVS, NVS_CAMERAS[0])
    frames = noisy(truth(converted, "nvs", *key)[0], 3)
    np.save(tmp_path / "frames.npy", frames)
    output = subprocess.run([sys.executable, "-c", SCRIPT, str(converted), str(tmp_path / "frames.npy"),
                             str(key[0]), key[1], key[2]], check=True, capture_output=True, text=True).stdout
    report = json.loads(output.strip().splitlines()[-1])
    assert report == {"frames": len(frames), "loaded": []}
