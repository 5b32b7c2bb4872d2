"""`nersemble-zarr downsample`: resolution levels (2x, 4x, ...) of the store's sequences."""

from __future__ import annotations

import click

from nersemble_zarr.errors import shown

from .options import CommaList, handle_errors, joined, list_option, participant_option, scheduler_option, workers_option


def _parse_levels(ctx: click.Context, param: click.Parameter, value) -> tuple[int, ...]:
    parts = joined(ctx, param, value)
    if not all(part.isdigit() for part in parts):
        raise click.BadParameter(f"{shown(','.join(parts))} is not a comma-separated list of integers such as 2,4.")
    return tuple(int(part) for part in parts)


@click.command()
@click.argument("store")
@click.option("--levels", "-l", multiple=True, type=CommaList(), default=("2,4",), show_default=True,
              callback=_parse_levels,
              help="Downsampling factor(s): repeatable or comma-separated; frames with alpha are averaged from the "
                   "coarsest level the level is a multiple of (4 from 2), the dataset's frames and background "
                   "pictures from level 1.")
@participant_option
@list_option("--sequence", "-s", "sequences", help="Sequence name(s): repeatable or comma-separated; default: all.")
@scheduler_option
@workers_option
@handle_errors
def downsample(store, levels, participants, sequences, scheduler, workers):
    """Write area-averaged resolution levels of the sequences in STORE, with rescaled intrinsics (resumable).

    Level s of nvs/388/GLASSES is written to the group level_s/nvs/388/GLASSES.
    """
    from nersemble_zarr.levels import downsample as run_downsample
    from nersemble_zarr.parallel import connect

    from .progress import progress_bar

    with connect(scheduler) as client, progress_bar("downsample", "camera") as progress:
        summary = run_downsample(
            store, levels, participants=tuple(participants) or None, sequences=tuple(sequences) or None,
            workers=workers, client=client, progress=progress,
        )
    click.echo(
        f"Levels {','.join(map(str, levels))} of {len(summary.sequences)} sequence(s): "
        f"{summary.cameras_written} camera(s) written, {summary.cameras_skipped} already complete."
    )
    if summary.cameras_not_converted:
        click.echo(
            f"Skipped {len(summary.cameras_not_converted)} camera(s) not yet converted "
            f"(first: {summary.cameras_not_converted[0]}); finish `nersemble-zarr convert` and run this again.",
            err=True,
        )
