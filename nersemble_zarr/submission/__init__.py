"""Benchmark submissions: write the crf-14 H.264 zip from predictions, and validate a zip like the server.

    export_submission(predictions, "submission.zip", "nvs")        # store, DataTree, mapping or image folder
    validate_submission("submission.zip", "nvs").raise_if_invalid()
    export_svfr_submission("predictions/svfr", "svfr.zip")          # meshes of the SVFR benchmark
    validate_svfr_submission("svfr.zip").raise_if_invalid()
"""

import importlib

# Each name is imported from its module on first use (PEP 562): evaluating or reading predictions needs none of
# the writers and validators, which pull in PyAV, scipy and the FLAME code.
_MODULE_OF = {
    "ExpectedVideo": "expected", "SubmissionSpec": "expected", "expected_submission": "expected",
    "FOLDER_LAYOUT": "predictions", "collect_predictions": "predictions",
    "ValidationReport": "validator", "validate_submission": "validator",
    "SvfrFlamePredictions": "svfr_predictions", "collect_svfr_predictions": "svfr_predictions",
    "validate_svfr_submission": "svfr_validator", "export_svfr_submission": "svfr_writer",
    "export_submission": "writer",
}


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


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
