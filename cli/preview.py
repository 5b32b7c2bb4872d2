"""``nersemble-zarr preview`` and ``preview-rig``: PNG pictures of a store's cameras and frames."""

from __future__ import annotations

from pathlib import Path

import click

from nersemble_zarr.outputs import claim_output_file

from nersemble_zarr.store_metadata import SOURCE_NAMES

from .options import ParticipantId, handle_errors, overwrite_file_option

participant_option = click.option("--participant", "-p", type=ParticipantId(), required=True,
                                  help="Participant id.")
sequence_option = click.option(
    "--sequence", "-s", default=None,
    help="Sequence name (default: the participant's NVS sequence, or its first mono sequence with frames).",
)
source_option = click.option(
    "--benchmark", "-b", type=click.Choice(SOURCE_NAMES), default=None,
    help="Benchmark, or 'dataset' (default: the benchmark the participant belongs to; dataset ids overlap them).",
)
level_option = click.option("--level", type=click.IntRange(min=1), default=1, show_default=True,
                            help="Resolution level (downsample's, or a dataset converted with --level).")


def _png_path(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    if value.suffix.lower() != ".png":
        raise click.BadParameter(f"{value} does not end in .png; the picture is written as PNG.")
    return value


output_option = click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
                             callback=_png_path,
                             help="PNG file to write, in an existing folder (an existing file only with --overwrite).")


@click.command(short_help="Contact sheet of every camera at one timestep: hold-out cameras in red, mesh or points "
                          "overlaid.")
@click.argument("store")
@participant_option
@sequence_option
@source_option
@level_option
@click.option("--timestep", "-t", type=int, default=None,
              help="Original frame index (a value of the timestep coordinate); default: the first.")
@click.option("--flame-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="FLAME folder: evaluate the mesh from the tracking when the store has no vertices.")
@click.option("--tile-width", type=click.IntRange(min=16), default=275, show_default=True,
              help="Largest width of one camera's tile in pixels (frames shrink by a whole factor).")
@click.option("--meshes", type=click.Path(exists=True, path_type=Path), default=None,
              help="SVFR: a submission zip or predictions folder whose meshes are drawn beside the images.")
@click.option("--task", type=click.Choice(["posed", "neutral"]), default="posed", show_default=True,
              help="SVFR: which task's meshes --meshes draws.")
@click.option("--dots", type=click.IntRange(min=0), default=1500, show_default=True,
              help="Most mesh or point cloud dots drawn on each frame, evenly thinned; 0 draws none.")
@output_option
@overwrite_file_option
@handle_errors
def preview(store: str, participant: int, sequence: str | None, benchmark: str | None, level: int,
            timestep: int | None, flame_dir: Path | None, tile_width: int, meshes: Path | None, task: str, dots: int,
            output: Path, overwrite: bool) -> None:
    """Contact sheet of every camera of STORE at one timestep: hold-out cameras framed in red, the FLAME
    mesh (stored vertices, or evaluated with --flame-dir) or the point cloud projected as green dots.
    For an SVFR participant: all its images, with --meshes each one's mesh drawn beside it."""
    from nersemble_zarr.preview import write_preview

    claim_output_file(output, overwrite=overwrite, inputs=(store, *([meshes] if meshes else [])))

    write_preview(store, output, participant, sequence=sequence, timestep=timestep, flame_dir=flame_dir,
                  tile_width=tile_width, meshes=meshes, task=task, max_dots=dots, benchmark=benchmark, level=level)
    click.echo(f"Wrote {output}.")


@click.command("preview-rig")
@click.argument("store")
@participant_option
@sequence_option
@source_option
@level_option
@output_option
@overwrite_file_option
@handle_errors
def preview_rig(store: str, participant: int, sequence: str | None, benchmark: str | None, level: int, output: Path,
                overwrite: bool) -> None:
    """3D plot of the camera rig of a participant in STORE: frustums around the head, hold-out cameras in red."""
    from nersemble_zarr.preview import write_rig_preview

    claim_output_file(output, overwrite=overwrite, inputs=(store,))

    write_rig_preview(store, output, participant, sequence, benchmark=benchmark, level=level)
    click.echo(f"Wrote {output}.")
