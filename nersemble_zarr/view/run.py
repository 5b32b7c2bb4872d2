"""``nersemble-zarr view``: open a sequence (or an SVFR participant) of the store and send it to a Rerun output."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Literal

from .. import catalogue, schema
from .. import store as store_module
from ..errors import ConfigError
from ..progress import Progress
from .log import log_sequence, log_svfr
from .outputs import save_recording, serve_web, spawn_recording, wait_until_interrupted

Mode = Literal["save", "serve", "spawn"]


def default_output(benchmark: str, participant: int, sequence: str | None) -> Path:
    """The ``.rrd`` file a view is saved to by default, e.g. ``388_GLASSES.rrd`` or ``svfr_17.rrd``."""
    if benchmark == catalogue.SVFR:
        return Path(f"svfr_{participant}.rrd")
    if sequence is None and benchmark == "nvs":
        sequence = catalogue.NVS_SEQUENCES.get(participant)
    return Path(f"{participant}_{sequence}.rrd")


def view(
    store: str | os.PathLike,
    benchmark: str,
    participant: int,
    sequence: str | None = None,
    *,
    mode: Mode = "save",
    output: str | os.PathLike | None = None,
    level: int = 1,
    timesteps: slice | None = None,
    cameras: list[str] | None = None,
    image_format: str = "jpeg",
    jpeg_quality: int = 90,
    flame_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
    announce=print,
) -> Path | None:
    """Log one sequence of ``store`` (see ``log_sequence``; for SVFR every image of the participant) and
    save it to ``output`` (``mode="save"``, default ``default_output``), serve it in Rerun's web viewer on
    127.0.0.1 until interrupted (``"serve"``; ``announce`` is given its address) or stream it to a native
    viewer (``"spawn"``). Returns the file saved, if any."""
    if benchmark != schema.DATASET:  # the dataset's ids are its index's, checked against the store's groups
        catalogue.check_participants(benchmark, [participant])
    tree = store_module.open(store)
    if benchmark == catalogue.SVFR:
        if sequence is not None or level != 1 or timesteps is not None or cameras:
            raise ConfigError("SVFR images have no sequence, level, timesteps or cameras to choose; "
                              "leave out -s, --level, --timesteps and --cameras.")
        dataset = store_module.svfr_images(tree, participant)
        name = schema.svfr_group(participant)

        def log(recording) -> None:
            log_svfr(dataset, recording, image_format=image_format, jpeg_quality=jpeg_quality, progress=progress)
    else:
        # a dataset sequence may be stored at a level only (converted with --level): open it there
        opened_at = level if benchmark == schema.DATASET else 1
        dataset = store_module.sequence(tree, benchmark, participant, sequence, level=opened_at)
        name = schema.level_group(opened_at, *(dataset.attrs[key] for key in (
            schema.BENCHMARK_ATTR, schema.PARTICIPANT_ATTR, schema.SEQUENCE_ATTR)))

        def log(recording) -> None:
            log_sequence(dataset, recording, level=level, timesteps=timesteps, cameras=cameras,
                         image_format=image_format, jpeg_quality=jpeg_quality, flame_dir=flame_dir,
                         progress=progress)

    if mode == "save":
        return save_recording(output or default_output(benchmark, participant, sequence), name, log)
    if mode == "spawn":
        spawn_recording(name, log)
        return None
    with tempfile.TemporaryDirectory(prefix="nersemble-zarr-view-") as folder:
        rrd = save_recording(Path(folder) / "view.rrd", name, log)
        with serve_web(rrd) as served:
            announce(f"Serving {name} at {served.url} (this machine only); Ctrl-C stops.")
            sys.stdout.flush()
            wait_until_interrupted(served)
    return None
