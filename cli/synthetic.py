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
    from tqdm import tqdm

    from nersemble_zarr.synthetic import SyntheticConfig, expected_files, generate

    config = {"tiny": SyntheticConfig.tiny, "tiny-svfr": SyntheticConfig.tiny_svfr, "full": SyntheticConfig.full}[size](seed)
    with tqdm(total=len(expected_files(config)), unit="file", desc="synthetic") as bar:
        generate(out, config, workers=workers, on_file=lambda _: bar.update())
    click.echo(f"Wrote the {size} synthetic benchmark to {out}")
