"""``nersemble-zarr synthetic OUT``: write a synthetic benchmark in the real server's layout."""

from __future__ import annotations

from pathlib import Path

import click

from .options import handle_errors, workers_option


size_option = click.option(
    "--size", type=click.Choice(["tiny", "tiny-svfr", "full"]), default="tiny", show_default=True,
    help="tiny: participants 388 (nvs) and 393 (mono), 6 frames, 1/10 resolution, and the SVFR images of "
         "participants 17 and 215 at 1/10 size (what the README tour fetches); tiny-svfr: only those SVFR images; "
         "full: the whole benchmark (SVFR included) at real size.",
)
seed_option = click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of every random choice."
)


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
@size_option
@seed_option
@workers_option
@handle_errors
def synthetic(out: Path, size: str, seed: int, workers: int) -> None:
    """Write a synthetic NeRSemble benchmark (server layout) under OUT."""
    from nersemble_zarr.synthetic import config_of_size, generate

    from .progress import progress_bar

    config = config_of_size(size, seed)
    with progress_bar("synthetic", "file") as progress:
        generate(out, config, workers=workers, progress=progress)
    click.echo(f"Wrote the {size} synthetic benchmark to {out}")
