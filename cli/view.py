"""``nersemble-zarr view``: browse a sequence in 3D over time with Rerun (a thin layer over nersemble_zarr.view)."""

from __future__ import annotations

from pathlib import Path

import click

from nersemble_zarr import schema
from nersemble_zarr.store_metadata import SOURCE_NAMES

from .options import ParticipantId, handle_errors, overwrite_file_option
from .progress import progress_bar


def _rrd_path(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None and value.suffix.lower() != ".rrd":
        raise click.BadParameter(f"{value} does not end in .rrd; Rerun recordings are saved as .rrd files.")
    return value


@click.command()
@click.argument("store")
@click.option("--benchmark", "-b", type=click.Choice(SOURCE_NAMES), required=True,
              help="Benchmark of the participant, or `dataset` (the NeRSemble v2 dataset).")
@click.option("--participant", "-p", type=ParticipantId(), required=True, help="Participant id.")
@click.option("--sequence", "-s", default=None,
              help="Sequence name (NVS: default the participant's sequence; the dataset: required).")
@click.option("--level", type=click.IntRange(min=1), default=1, show_default=True,
              help="Resolution level of the frames (levels above 1 are written by `downsample`).")
@click.option("--timesteps", "-t", default=None, metavar="A:B:STEP",
              help="Original frame indices A <= t < B, every STEP-th (each part optional); default: all.")
@click.option("--cameras", "-c", multiple=True, help="Camera serial to show (repeatable); default: all.")
@click.option("--image-format", type=click.Choice(["jpeg", "png"]), default="jpeg", show_default=True,
              help="How frames are sent to the viewer (PNG: lossless, larger).")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=90, show_default=True,
              help="JPEG quality of the frames sent.")
@click.option("--flame-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="FLAME folder: evaluate the meshes from the tracking when the store has none.")
@click.option("--save", "output", type=click.Path(dir_okay=False, path_type=Path), default=None, callback=_rrd_path,
              help="Write the recording to this .rrd file (the default, as PARTICIPANT_SEQUENCE.rrd).")
@click.option("--serve", is_flag=True, help="Serve Rerun's web viewer on 127.0.0.1 and print its address.")
@click.option("--spawn", is_flag=True, help="Open Rerun's native viewer (needs a display).")
@overwrite_file_option
@handle_errors
def view(store: str, benchmark: str, participant: int, sequence: str | None, level: int, timesteps: str | None,
         cameras: tuple[str, ...], image_format: str, jpeg_quality: int, flame_dir: Path | None,
         output: Path | None, serve: bool, spawn: bool, overwrite: bool) -> None:
    """Browse a sequence of STORE in 3D over time with Rerun: every camera as a pinhole at its pose (hold-out
    cameras red), its frames and alpha on the `timestep` timeline, the FLAME mesh and landmarks, point
    clouds; a dataset sequence (-b dataset): cameras and frames. For an SVFR participant: its images, each under
    its key. Needs the `view` extra
    (pip install 'nersemble_zarr[view]')."""
    if sum([output is not None, serve, spawn]) > 1:
        raise click.UsageError("Choose one of --save, --serve and --spawn.")
    if benchmark == schema.DATASET and sequence is None:
        raise click.UsageError("A dataset participant has many sequences; name one with -s.")
    from nersemble_zarr.outputs import claim_output_file
    from nersemble_zarr.view import default_output, view as run_view
    from nersemble_zarr.view.selection import parse_timesteps

    mode = "serve" if serve else "spawn" if spawn else "save"
    if mode == "save":
        output = claim_output_file(output or default_output(benchmark, participant, sequence),
                                   overwrite=overwrite, inputs=(store,))
    with progress_bar("Logging frames", "frame") as bar:
        written = run_view(store, benchmark, participant, sequence, mode=mode, output=output, level=level,
                           timesteps=parse_timesteps(timesteps), cameras=list(cameras) or None,
                           image_format=image_format, jpeg_quality=jpeg_quality, flame_dir=flame_dir,
                           progress=bar, announce=lambda text: (bar.close(), click.echo(text)))
    if written is not None:
        click.echo(f"Wrote {written}; open it with `rerun {written}`.")
