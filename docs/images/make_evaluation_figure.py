"""Make docs/images/evaluation-nvs.png and print the table of the worked example in docs/evaluation.md.

    python docs/images/make_evaluation_figure.py

The tiny synthetic benchmark is generated and converted; two NVS train cameras are held out by a validation
split, and a stand-in "method" predicts them as the ground truth blurred (box 3x3) with a colour shift that
grows over time. They are then scored like any predictions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter

from nersemble_zarr import schema
from nersemble_zarr import store as store_module
from nersemble_zarr.convert import convert
from nersemble_zarr.evaluation import ValidationSplit, evaluate, write_split
from nersemble_zarr.evaluation.plot import plot_result
from nersemble_zarr.synthetic import SyntheticConfig, generate

OUTPUT = Path(__file__).with_name("evaluation-nvs.png")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root, store = Path(tmp) / "benchmark", Path(tmp) / "nersemble.zarr"
        generate(root, SyntheticConfig(scale=0.25, n_frames=12, nvs_participants=(388,), mono_participants=()))
        convert(root, store, benchmarks=("nvs",), workers=2)
        split = ValidationSplit("nvs", serials=("222200042", "222200044"))
        write_split(split, Path(tmp) / "split.json")
        dataset = store_module.sequence(store_module.open(store, dask=False), "nvs", 388)
        predictions = {}
        for serial in split.serials:
            frames = dataset[schema.IMAGES].sel({schema.SERIAL: serial}).values / 255.0
            drift = np.linspace(0, 0.08, len(frames))[:, None, None, None] * np.array([1.0, 0.0, -1.0])
            predictions[388, "GLASSES", serial] = np.clip(uniform_filter(frames, (0, 3, 3, 0)) + drift, 0, 1)
        result = evaluate(predictions, store, "nvs", validation=Path(tmp) / "split.json", lpips=False, workers=2)
        print(result.table())
        plot_result(result, OUTPUT)


if __name__ == "__main__":
    main()
