"""nersemble_zarr: the NeRSemble 3D head avatar benchmark as one chunked zarr v3 store."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import (
    CatalogueError,
    ConfigError,
    ConversionError,
    DownloadError,
    EvaluationError,
    FlameError,
    InputDataError,
    NersembleError,
    StoreError,
    SubmissionError,
)

try:
    __version__ = version("nersemble_zarr")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "CatalogueError",
    "ConfigError",
    "ConversionError",
    "DownloadError",
    "EvaluationError",
    "FlameError",
    "InputDataError",
    "NersembleError",
    "StoreError",
    "SubmissionError",
    "__version__",
]
