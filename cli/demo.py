"""`nersemble-zarr demo`: the whole job on the built-in synthetic benchmark."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import click

from .options import handle_errors, workers_option


@click.command()
@click.argument("work", type=click.Path(file_okay=False, path_type=Path), default="demo-output")
@click.option("--size", type=click.Choice(["tiny", "small"]), default="tiny", show_default=True,
              help="tiny: 1/10 resolution, 6 frames; small: real resolution, 12 frames.")
@workers_option
@handle_errors
def demo(work: Path, size: str, workers: int) -> None:
    """Generate the synthetic benchmark, serve it on loopback, fetch, convert, mesh, export and validate."""
    from nersemble_zarr.demo import run_demo

    paths = run_demo(work, size=size, workers=workers, report=lambda line: click.echo(f"[demo] {line}"))
    click.echo(f"[demo] the FLAME stand-in model (not FLAME) is in {paths.flame_dir}: pass it as --flame-dir.")
    python = shlex.quote(sys.executable)  # the interpreter that has the package, whatever is on PATH
    click.echo(f"[demo] done. Open the store with: {python} -c \"import nersemble_zarr.store as nz; "
               f"print(nz.open('{paths.store}'))\"")
    command = Path(sys.executable).with_name("nersemble-zarr")
    if shutil.which("nersemble-zarr") != str(command) and command.is_file():
        click.echo(f"[demo] nersemble-zarr is {command}; `. {command.parent}/activate` puts it on your PATH.")
