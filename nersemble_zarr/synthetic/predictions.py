"""Perfect predictions for the synthetic benchmark: its hidden ground truth in the layouts that
``export-submission`` and ``evaluate`` read.

``write_predictions_store`` renders every camera (the 16, hold-out cameras included) of every video sequence
of a config into a zarr store laid out like a converted one; ``write_svfr_meshes`` writes the FLAME meshes
behind each SVFR image (posed and neutral, evaluated with the given FLAME model) into a folder mirroring the
fetched ``svfr`` folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .. import catalogue
from ..errors import ConfigError
from ..outputs import check_output_folder
from ..progress import Progress, advance, set_total
from .config import SyntheticConfig
from .render import render_views
from .svfr import svfr_flame_parameters

SVFR_PARAMETERS = ("shape", "expression", "jaw", "neck", "eyes", "rotation", "translation", "scale")


def write_predictions_store(
    path: str | os.PathLike, config: SyntheticConfig, *, overwrite: bool = False, progress: Progress | None = None
) -> Path:
    """Write ``images (serial, timestep, y, x, channel)`` of all 16 cameras for every NVS and mono sequence of
    ``config`` into the zarr store ``path`` (one group per sequence, as in a converted store); ``progress``
    counts cameras. The store is built beside ``path`` and moved into place when complete."""
    import xarray as xr

    from ..store import consolidate, prepare_store

    sequences = [(benchmark, participant, sequence) for benchmark in catalogue.BENCHMARKS
                 for participant in config.participants_of(benchmark)
                 for sequence in config.sequences_of(benchmark, participant)]
    if not sequences:
        raise ConfigError("The synthetic config has no NVS or mono sequence to predict.")
    target = _writable(Path(path), "predictions store", overwrite)
    set_total(progress, len(sequences) * len(catalogue.SERIALS))
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as scratch:
        built = Path(scratch) / target.name
        prepare_store(built)
        for benchmark, participant, sequence in sequences:
            cameras = []
            for serial in catalogue.SERIALS:
                views = render_views(config, benchmark, participant, sequence, serial)
                cameras.append(np.stack([rgb for rgb, _ in views]))
                advance(progress, 1)
            images = xr.DataArray(np.stack(cameras), dims=("serial", "timestep", "y", "x", "channel"),
                                  coords={"serial": np.array(catalogue.SERIALS, dtype=object)})
            xr.Dataset({"images": images}).to_zarr(built, group=f"{benchmark}/{participant}/{sequence}",
                                                   zarr_format=3, consolidated=False)
        consolidate(built)
        _move_into_place(built, target)
    return target


def write_svfr_meshes(
    folder: str | os.PathLike, config: SyntheticConfig, *, flame_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``{participant:03d}/{sequence}_{timestep}_{serial}/mesh_{posed,neutral}.ply`` under ``folder``:
    the meshes of the FLAME parameters behind each SVFR image of ``config``, evaluated with the model of
    ``flame_dir`` (default: $NERSEMBLE_FLAME_DIR, else ~/.cache/FLAME). Written beside ``folder`` first."""
    from ..submission import SvfrFlamePredictions, export_svfr_submission

    if not config.svfr_participants:
        raise ConfigError("The synthetic config has no SVFR image to predict.")
    target = _writable(Path(folder), "SVFR predictions folder", overwrite)
    parameters = SvfrFlamePredictions({
        (participant, *key): {name: svfr_flame_parameters(config, participant, key)[name] for name in SVFR_PARAMETERS}
        for participant in config.svfr_participants for key in config.svfr_keys_of(participant)
    })
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as scratch:
        archive_path = Path(scratch) / "meshes.zip"
        export_svfr_submission(parameters, archive_path, partial=True, flame_dir=flame_dir)
        built = Path(scratch) / target.name
        with zipfile.ZipFile(archive_path) as archive:
            archive.extractall(built)  # entries written by export_svfr_submission: checked relative names
        _move_into_place(built, target)
    return target


def _writable(path: Path, what: str, overwrite: bool) -> Path:
    """The absolute output path, refusing an existing one without ``overwrite`` and a missing parent folder."""
    path = check_output_folder(path, what).absolute()
    if not path.parent.is_dir():
        raise ConfigError(f"The folder of the {what} {path} does not exist; create it first.")
    if path.exists() and not overwrite:
        raise ConfigError(f"The {what} {path} exists; pass --overwrite to replace it.")
    return path


def _move_into_place(built: Path, target: Path) -> None:
    """Move the finished ``built`` onto ``target``; a replaced one is removed only once the new one is in place."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.replaced")
        os.replace(target, old)
    os.replace(built, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
