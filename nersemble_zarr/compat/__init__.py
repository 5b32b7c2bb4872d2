"""Drop-in for the official toolkit's Python API (``nersemble_benchmark``): change the imports, keep the code.

    from nersemble_zarr.compat import NVSDataManager, FlameProvider, NVSSubmissionDataWriter, SVFRDataManager
    from nersemble_zarr.compat.constants import BENCHMARK_NVS_IDS_AND_SEQUENCES

The data managers take a fetched folder or a converted store; see docs/migration.md for what differs.
``NeRSembleDataManager`` and ``NeRSembleParticipantDataManager`` stand in for the dataset kit's (``nersemble_data``)
over a NeRSemble v2 dataset folder; see docs/dataset.md.
"""

from .constants import *  # noqa: F401,F403 - the official constants under their names
from .dataset_managers import NeRSembleDataManager, NeRSembleParticipantDataManager
from .data_managers import (
    BaseDataManager, CameraParams, FlameTracking, ImageKey, MonoFlameAvatarDataManager, NVSDataManager,
)
from .flame_provider import FlameProvider
from .submission import (
    MonoFlameAvatarSubmissionDataReader, MonoFlameAvatarSubmissionDataWriter, NVSSubmissionDataReader,
    NVSSubmissionDataWriter,
)
from .svfr_data import SVFRDataManager
from .svfr_submission import SVFRSubmissionDataReader, SVFRSubmissionDataWriter

__all__ = [
    "BaseDataManager", "CameraParams", "FlameProvider", "FlameTracking", "ImageKey", "MonoFlameAvatarDataManager",
    "MonoFlameAvatarSubmissionDataReader", "MonoFlameAvatarSubmissionDataWriter", "NVSDataManager",
    "NeRSembleDataManager", "NeRSembleParticipantDataManager",
    "NVSSubmissionDataReader", "NVSSubmissionDataWriter", "SVFRDataManager", "SVFRSubmissionDataReader",
    "SVFRSubmissionDataWriter",
]
