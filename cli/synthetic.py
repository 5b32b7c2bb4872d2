"""``nersemble-zarr synthetic OUT``: write a synthetic benchmark in the real server's layout."""

from __future__ import annotations

from pathlib import Path

import click

from .options import handle_errors, workers_option


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--size", type=click.Choice(["tiny", "tiny-svfr", "full"]), default="tiny", show_default=True,
    help="tiny: one participant per video benchmark, 6 frames, 1/10 resolution; tiny-svfr: the SVFR images of "
         "participants 17 and 215 at 1/10 size; full: the whole benchmark (SVFR included) at real size.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of every random choice.")
@workers_option
@handle_errors
def synthetic(out: Path, size: str, seed: int, workers: int) -> None:
    """Write a synthetic NeRSemble benchmark (server layout) under OUT."""
    from nersemble_zarr.synthetic import SyntheticConfig, generate

    from .progress import progress_bar

    config = {"tiny": SyntheticConfig.tiny, "tiny-svfr": SyntheticConfig.tiny_svfr, "full": SyntheticConfig.full}[size](seed)
    with progress_bar("synthetic", "file") as progress:
        generate(out, config, workers=workers, progress=progress)
    click.echo(f"Wrote the {size} synthetic benchmark to {out}")
