"""``nersemble-zarr synthetic-predictions``: the synthetic benchmark's hidden ground truth as predictions."""

from __future__ import annotations

from pathlib import Path

import click

from .meshes import flame_dir_option
from .options import handle_errors, overwrite_flag
from .synthetic import seed_option, size_option


@click.command("synthetic-predictions",
               short_help="Write the synthetic benchmark's ground truth as predictions.zarr and PRED/.")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=".")
@size_option
@seed_option
@flame_dir_option
@overwrite_flag("Replace an existing predictions.zarr or PRED/ (default: refused).")
@handle_errors
def synthetic_predictions(folder: Path, size: str, seed: int, flame_dir: Path | None, overwrite: bool) -> None:
    """Write perfect predictions for the synthetic benchmark of `nersemble-zarr synthetic --size SIZE --seed SEED`
    into FOLDER (default: here): predictions.zarr (every camera of every NVS and mono sequence, hold-out cameras
    included, as export-submission and evaluate read it) and PRED/ (the FLAME meshes behind each SVFR image,
    evaluated with the model of --flame-dir: on the synthetic benchmark, the stand-in that `nersemble-zarr demo`
    writes to demo-output/flame-standin-NOT-FLAME)."""
    from nersemble_zarr.errors import ConfigError
    from nersemble_zarr.outputs import check_output_folder
    from nersemble_zarr.synthetic import config_of_size
    from nersemble_zarr.synthetic.predictions import write_predictions_store, write_svfr_meshes

    from .progress import progress_bar

    config = config_of_size(size, seed)
    check_output_folder(folder, "predictions folder")
    if not folder.parent.is_dir():
        raise ConfigError(f"The folder {folder.parent} does not exist; create it first.")
    folder.mkdir(exist_ok=True)
    written = []
    if config.nvs_participants or config.mono_participants:
        with progress_bar("rendering", "camera") as progress:
            written.append(write_predictions_store(folder / "predictions.zarr", config, overwrite=overwrite,
                                                   progress=progress))
    if config.svfr_participants:
        written.append(write_svfr_meshes(folder / "PRED", config, flame_dir=flame_dir, overwrite=overwrite))
    click.echo(f"Wrote the {size} synthetic benchmark's ground truth as predictions: "
               f"{' and '.join(str(path) for path in written)}.")
