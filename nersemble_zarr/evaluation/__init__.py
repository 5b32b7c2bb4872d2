"""Local evaluation on a validation split: PSNR, SSIM, LPIPS and JOD of predictions against the store.

    split = ValidationSplit("nvs", serials=("222200037",))
    result = evaluate("predictions.zarr", "nersemble.zarr", "nvs", validation=split)
    print(result.table()); result.dataset(); result.write_json("scores.json")
"""

from .report import EvaluationResult, FrameScores, VideoScores
from .run import evaluate
from .splits import ValidationSplit, read_split, write_split

__all__ = ["EvaluationResult", "FrameScores", "ValidationSplit", "VideoScores", "evaluate", "read_split",
           "write_split"]
