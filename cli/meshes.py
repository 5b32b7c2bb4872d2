"""``nersemble-zarr meshes`` and ``export-mesh``: FLAME meshes into the store, one mesh out of it."""

from __future__ import annotations

from pathlib import Path

import click

from .options import (
    ParticipantId, handle_errors, list_option, overwrite_file_option, overwrite_flag, participant_option,
    scheduler_option,
)

flame_dir_option = click.option(
    "--flame-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder with flame2023.pkl (default: $NERSEMBLE_FLAME_DIR, else ~/.cache/FLAME).",
)
device_option = click.option(
    "--device", default="auto", show_default=True, help="Torch device: auto (GPU when available), cuda, cuda:N or cpu.",
)


@click.command()
@click.argument("store", type=click.Path(path_type=Path))
@participant_option
@list_option("--sequence", "-s", "sequences", help="Sequence name(s): repeatable or comma-separated; default: all.")
@flame_dir_option
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Timesteps per batch (default: from free GPU memory, or 128 on CPU).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch (default: torch's, one per core); 1 is fastest on a busy shared CPU.")
@scheduler_option
@overwrite_flag("Recompute the meshes of complete sequences too (default: keep them).")
@handle_errors
def meshes(store: Path, participants: tuple[int, ...], sequences: tuple[str, ...], flame_dir: Path | None,
           device: str, batch_size: int | None, threads: int | None, scheduler: str | None, overwrite: bool) -> None:
    """Evaluate FLAME for every timestep of the mono sequences in STORE and store vertices and landmarks.

    Resumable: finished sequences are skipped and an interrupted sequence continues where it stopped.
    """
    from nersemble_zarr.errors import FlameError
    from nersemble_zarr.flame.write_all import complete_without_model, plan_meshes, write_meshes
    from nersemble_zarr.parallel import connect

    from .progress import progress_bar

    with connect(scheduler) as client:
        try:
            plan = plan_meshes(store, participants=participants, sequences=sequences, flame_dir=flame_dir,
                               device=device, overwrite=overwrite)
        except FlameError:  # no usable model: fine when there is nothing to compute
            complete = None if overwrite else complete_without_model(store, participants=participants,
                                                                     sequences=sequences)
            if complete is None:
                raise
            click.echo(f"{complete} sequence(s) with FLAME tracking, {complete} already complete; nothing to do "
                       "(--overwrite recomputes them).")
            return
        if plan.model.assets.is_standin:
            click.echo("Warning: the model in the FLAME folder is the test STAND-IN, not FLAME.", err=True)
        click.echo(f"{len(plan.targets)} sequence(s) with FLAME tracking, {plan.n_complete} already complete.")
        if plan.other_model:
            click.echo(f"Warning: {len(plan.other_model)} complete sequence(s) were made with another model "
                       f"(e.g. {plan.other_model[0].path}); rerun with --overwrite to recompute them.", err=True)
        with progress_bar("meshes", "sequence" if client else "mesh") as progress:
            write_meshes(plan, batch_size=batch_size, threads=threads, client=client, progress=progress)
    if plan.todo:
        where = f"the cluster at {scheduler}" if scheduler else plan.model.device
        click.echo(f"Wrote meshes of {len(plan.todo)} sequence(s) on {where}.")


@click.command("export-mesh")
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--participant", "-p", type=ParticipantId(), required=True, help="Participant id.")
@click.option("--sequence", "-s", required=True, help="Sequence name.")
@click.option("--timestep", "-t", type=int, required=True, help="Frame index (a value of the timestep coordinate).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Mesh file to write (.ply or .obj), in an existing folder (an existing file only with --overwrite).")
@flame_dir_option
@device_option
@overwrite_file_option
@handle_errors
def export_mesh(store: Path, participant: int, sequence: str, timestep: int, output: Path,
                flame_dir: Path | None, device: str, overwrite: bool) -> None:
    """Write the FLAME mesh of one timestep as PLY or OBJ (from stored vertices, else evaluated)."""
    from nersemble_zarr.flame.lbs import FlameModel
    from nersemble_zarr.flame.mesh_io import check_mesh_path, write_mesh
    from nersemble_zarr.flame.store import read_mesh
    from nersemble_zarr.outputs import claim_output_file

    claim_output_file(check_mesh_path(output), overwrite=overwrite, inputs=(store,))
    vertices, faces = read_mesh(store, participant, sequence, timestep, lambda: FlameModel.load(flame_dir, device))
    write_mesh(output, vertices, faces)
    click.echo(f"Wrote {output} ({len(vertices)} vertices, {len(faces)} faces).")
