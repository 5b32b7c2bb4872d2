"""Benchmark submissions: write the crf-14 H.264 zip from predictions, and validate a zip like the server.

    export_submission(predictions, "submission.zip", "nvs")        # store, DataTree, mapping or image folder
    validate_submission("submission.zip", "nvs").raise_if_invalid()
    export_svfr_submission("predictions/svfr", "svfr.zip")          # meshes of the SVFR benchmark
    validate_svfr_submission("svfr.zip").raise_if_invalid()
"""

from .expected import ExpectedVideo, SubmissionSpec, expected_submission
from .predictions import FOLDER_LAYOUT, collect_predictions
from .validator import ValidationReport, validate_submission
from .svfr_predictions import SvfrFlamePredictions, collect_svfr_predictions
from .svfr_validator import validate_svfr_submission
from .svfr_writer import export_svfr_submission
from .writer import export_submission

__all__ = [
    "FOLDER_LAYOUT",
    "ExpectedVideo",
    "SubmissionSpec",
    "SvfrFlamePredictions",
    "ValidationReport",
    "collect_predictions",
    "collect_svfr_predictions",
    "expected_submission",
    "export_submission",
    "export_svfr_submission",
    "validate_submission",
    "validate_svfr_submission",
]
