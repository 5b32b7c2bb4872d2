"""Browse a sequence in 3D over time with Rerun (the optional extra ``view``: ``pip install 'nersemble_zarr[view]'``).

    import rerun as rr
    import nersemble_zarr.store as nz
    from nersemble_zarr.view import log_sequence

    recording = rr.RecordingStream("nersemble_zarr")
    recording.save("388.rrd")
    log_sequence(nz.sequence(nz.open("nersemble.zarr"), "nvs", 388), recording, level=4)

rerun-sdk is imported only when something is logged, so this package imports without it.
"""

from .log import TIMELINE, camera_path, log_sequence, log_svfr
from .outputs import save_recording, serve_web, spawn_recording
from .run import default_output, view

__all__ = [
    "TIMELINE",
    "camera_path",
    "default_output",
    "log_sequence",
    "log_svfr",
    "save_recording",
    "serve_web",
    "spawn_recording",
    "view",
]
