"""``export-submission`` and ``validate-submission``: the benchmark's crf-14 H.264 zip."""

from __future__ import annotations

from pathlib import Path

import click

from nersemble_zarr.errors import ConfigError, SubmissionError, shown

from .options import (
    CommaList, benchmark_choice, handle_errors, list_option, overwrite_flag, scheduler_option, workers_option,
)
from .progress import progress_bar


def _parse_resolution(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    width, _, height = value.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise click.BadParameter(f"{shown(value)} is not WIDTHxHEIGHT, e.g. 1100x1604.")
    return int(width), int(height)


benchmark_option = click.option(
    "--benchmark", "-b", type=benchmark_choice, required=True, help="Which benchmark the zip is for."
)
root_option = click.option(
    "--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Fetched folder whose {benchmark}/metadata.json gives the frame counts.",
)
store_option = click.option(
    "--store", type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Converted store whose sequence groups give the frame counts (length of 'timestep').",
)
partial_option = click.option(
    "--partial", is_flag=True, help="Allow a subset of the benchmark's videos (svfr: of a task's 391 meshes)."
)
task_option = list_option(
    "--task", "tasks", type=CommaList(("posed", "neutral")),
    help="svfr: the task(s) to take from PREDICTIONS (repeatable or comma-separated); default: every task found.",
)
resolution_option = click.option(
    "--resolution", metavar="WIDTHxHEIGHT", callback=_parse_resolution,
    help="Expected frame size; default: that of the videos under --root or the frames in --store (the synthetic "
         "benchmark's own), else the benchmark's (1100x1604 nvs, 512x512 mono).",
)


@click.command("export-submission", short_help="Encode predictions (store, image folder, GaussianAvatars renders, "
                                                "SVFR meshes) into a submission zip.")
@click.argument("predictions", type=click.Path(exists=True, path_type=Path))
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@benchmark_option
@root_option
@store_option
@partial_option
@resolution_option
@task_option
@workers_option
@scheduler_option
@overwrite_flag("Replace an existing OUTPUT, once the new zip has validated (default: an existing OUTPUT is "
                "refused).")
@click.option("--render-target-dir", "--render-target", "render_targets", multiple=True, metavar="DIRECTORY",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="PREDICTIONS is a GaussianAvatars model folder: take the views it rendered for the render target "
                   "DIRECTORY (the folder `export-frames --format vhap --render-target` wrote); repeatable, one per "
                   "sequence.")
@handle_errors
def export_submission(
    predictions: Path, output: Path, benchmark: str, root: Path | None, store: Path | None, partial: bool,
    resolution: tuple[int, int] | None, tasks: tuple[str, ...], workers: int, scheduler: str | None, overwrite: bool,
    render_targets: tuple[Path, ...],
) -> None:
    """Encode PREDICTIONS (a zarr store laid out like a converted one, a folder of images
    PRED/{participant:03d}/{sequence}/cam_{serial}/{frame:05d}.png, or with --render-target-dir a GaussianAvatars
    model folder) into the submission zip OUTPUT.

    For svfr, PREDICTIONS mirrors the fetched svfr folder: PRED/{participant:03d}/{sequence}_{timestep}_{serial}/
    mesh_posed.ply|.obj and/or mesh_neutral.ply|.obj (and landmarks_{task}.npy for meshes not of FLAME topology)."""
    from nersemble_zarr.parallel import connect
    from nersemble_zarr.submission import export_submission as export

    if benchmark == "svfr":
        _refuse_video_options(root, store, resolution, scheduler)
        _export_svfr(predictions, output, tasks, partial, overwrite)
        return
    if tasks:
        raise ConfigError("--task applies to --benchmark svfr only.")
    if render_targets:
        from nersemble_zarr.submission.gaussian_avatars import rendered_predictions

        predictions = rendered_predictions(predictions, list(render_targets))

    with connect(scheduler) as client, progress_bar("encoding", "frame") as progress:
        report = export(
            predictions, output, benchmark, root=root, store=store, resolution=resolution, partial=partial,
            overwrite=overwrite, workers=workers, client=client, progress=progress,
        )
    click.echo(f"Wrote {output} with {len(report.valid_videos)} validated {benchmark} videos.")


@click.command("validate-submission")
@click.argument("zip_path", metavar="ZIP", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@benchmark_option
@root_option
@store_option
@partial_option
@resolution_option
@workers_option
@handle_errors
def validate_submission(
    zip_path: Path, benchmark: str, root: Path | None, store: Path | None, partial: bool,
    resolution: tuple[int, int] | None, workers: int,
) -> None:
    """Check ZIP like the benchmark server: files, frame counts, size, codec, pixel format and fps (svfr:
    meshes, landmarks, tasks). Every problem is listed; the exit status is non-zero if there is any."""
    from nersemble_zarr.submission import validate_submission as validate, validate_svfr_submission

    if benchmark == "svfr":
        _refuse_video_options(root, store, resolution, None)
        with progress_bar("checking", "mesh") as progress:
            report = validate_svfr_submission(zip_path, partial=partial, progress=progress)
    else:
        with progress_bar("checking", "video") as progress:
            report = validate(
                zip_path, benchmark, root=root, store=store, resolution=resolution, partial=partial, progress=progress,
                workers=workers,
            )
    if report.ok:
        unit = "meshes" if benchmark == "svfr" else "videos"
        click.echo(f"{zip_path} is a valid {benchmark} submission ({len(report.valid_videos)} {unit} checked).")
        return
    for problem in report.problems:
        click.echo(f"- {problem}", err=True)
    raise SubmissionError(
        f"{zip_path} is not a valid {benchmark} submission: {len(report.problems)} problem(s), listed above."
    )


def _export_svfr(predictions: Path, output: Path, tasks: tuple[str, ...], partial: bool, overwrite: bool) -> None:
    from nersemble_zarr.submission import export_svfr_submission

    with progress_bar("writing", "mesh") as progress:
        report = export_svfr_submission(
            predictions, output, tasks=tasks or None, partial=partial, overwrite=overwrite, progress=progress
        )
    click.echo(f"Wrote {output} with {len(report.valid_videos)} validated svfr meshes.")


def _refuse_video_options(root, store, resolution, scheduler) -> None:
    """--root, --store, --resolution and --scheduler describe videos; an SVFR submission has none."""
    given = [name for name, value in (("--root", root), ("--store", store), ("--resolution", resolution),
                                      ("--scheduler", scheduler)) if value is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} do(es) not apply to --benchmark svfr (its zip holds meshes, not videos).")

