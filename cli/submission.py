"""``export-submission`` and ``validate-submission``: the benchmark's crf-14 H.264 zip."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import click

from nersemble_zarr.errors import ConfigError, SubmissionError, shown

from .options import handle_errors, overwrite_option, workers_option

BENCHMARKS = ("nvs", "mono_flame_avatar", "svfr")


def _parse_resolution(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    width, _, height = value.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise click.BadParameter(f"{shown(value)} is not WIDTHxHEIGHT, e.g. 1100x1604.")
    return int(width), int(height)


benchmark_option = click.option(
    "--benchmark", "-b", type=click.Choice(BENCHMARKS), required=True, help="Which benchmark the zip is for."
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
task_option = click.option(
    "--task", "tasks", multiple=True, type=click.Choice(["posed", "neutral"]),
    help="svfr: the task(s) to take from PREDICTIONS (repeatable); default: every task found.",
)
resolution_option = click.option(
    "--resolution", metavar="WIDTHxHEIGHT", callback=_parse_resolution,
    help="Expected frame size instead of the benchmark's (1100x1604 nvs, 512x512 mono); for previews and tests.",
)


@click.command("export-submission")
@click.argument("predictions", type=click.Path(exists=True, path_type=Path))
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@benchmark_option
@root_option
@store_option
@partial_option
@resolution_option
@task_option
@workers_option
@click.option(
    "--scheduler", metavar="ADDRESS",
    help="dask.distributed scheduler to encode on (its workers must see OUTPUT's folder); default: local threads.",
)
@overwrite_option
@handle_errors
def export_submission(
    predictions: Path, output: Path, benchmark: str, root: Path | None, store: Path | None, partial: bool,
    resolution: tuple[int, int] | None, tasks: tuple[str, ...], workers: int, scheduler: str | None, overwrite: bool,
) -> None:
    """Encode PREDICTIONS (a zarr store laid out like a converted one, or a folder of images
    PRED/{participant:03d}/{sequence}/cam_{serial}/{frame:05d}.png) into the submission zip OUTPUT.

    For svfr, PREDICTIONS mirrors the fetched svfr folder: PRED/{participant:03d}/{sequence}_{timestep}_{serial}/
    mesh_posed.ply|.obj and/or mesh_neutral.ply|.obj (and landmarks_{task}.npy for meshes not of FLAME topology)."""
    from nersemble_zarr.submission import export_submission as export

    if benchmark == "svfr":
        _refuse_video_options(root, store, resolution, scheduler)
        _export_svfr(predictions, output, tasks, partial, overwrite)
        return
    if tasks:
        raise ConfigError("--task applies to --benchmark svfr only.")

    with _client(scheduler) as client, _progress_bar("encoding", "frame") as progress:
        report = export(
            predictions, output, benchmark, root=root, store=store, resolution=resolution, partial=partial,
            overwrite=overwrite, workers=workers, client=client, progress=progress,
        )
    click.echo(f"Wrote {output} with {len(report.valid_videos)} validated {benchmark} videos.")


@click.command("validate-submission")
@click.argument("zip_path", metavar="ZIP", type=click.Path(path_type=Path))
@benchmark_option
@root_option
@store_option
@partial_option
@resolution_option
@handle_errors
def validate_submission(
    zip_path: Path, benchmark: str, root: Path | None, store: Path | None, partial: bool,
    resolution: tuple[int, int] | None,
) -> None:
    """Check ZIP like the benchmark server: files, frame counts, size, codec, pixel format and fps (svfr:
    meshes, landmarks, tasks). Every problem is listed; the exit status is non-zero if there is any."""
    from nersemble_zarr.submission import validate_submission as validate, validate_svfr_submission

    if benchmark == "svfr":
        _refuse_video_options(root, store, resolution, None)
        with _progress_bar("checking", "mesh") as progress:
            report = validate_svfr_submission(zip_path, partial=partial, progress=progress)
    else:
        with _progress_bar("checking", "video") as progress:
            report = validate(
                zip_path, benchmark, root=root, store=store, resolution=resolution, partial=partial, progress=progress
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

    with _progress_bar("writing", "mesh") as progress:
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


@contextmanager
def _progress_bar(description: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a tqdm bar, opened at the first report (so checks that
    fail before any work print no bar)."""
    from tqdm import tqdm

    bars = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=description, unit=unit, total=total, dynamic_ncols=True))
        bars[0].update(done - bars[0].n)

    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()


@contextmanager
def _client(address: str | None) -> Iterator[object | None]:
    """A dask.distributed client connected to ``address`` (None: no client, local threads)."""
    if address is None:
        yield None
        return
    from distributed import Client

    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as error:
        raise ConfigError(f"Cannot reach the dask scheduler at {address} ({error}).") from error
    with client:
        yield client
