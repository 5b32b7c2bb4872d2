"""`nersemble-zarr convert`: fetched folder -> chunked zarr v3 store."""

from __future__ import annotations

import click

from nersemble_zarr.store_metadata import SOURCE_NAMES

from .options import (
    CommaList, codec_option, handle_errors, list_option, participant_option, scheduler_option, workers_option,
)


@click.command()
@click.argument("root", type=click.Path(file_okay=False, exists=True))
@click.argument("store")
@list_option("--benchmark", "-b", "benchmarks", type=CommaList(SOURCE_NAMES),
             help="Benchmark(s), or the v2 dataset, to convert: repeatable or comma-separated; default: every one "
                  "fetched under ROOT.")
@participant_option
@list_option("--sequence", "-s", "sequences",
             help="Sequence name(s): repeatable or comma-separated; default: all fetched.")
@list_option("--cameras", "cameras", help="Dataset only: camera serial(s), repeatable or comma-separated; default: "
                                            "every camera fetched.")
@click.option("--level", type=click.IntRange(min=1), default=1, show_default=True,
              help="Dataset only: store the frames at resolution level N (N x N area average; N > 1 goes where "
                   "`downsample` puts level N), without writing full resolution.")
@click.option("--colour-correct/--no-colour-correct", default=False, show_default=True,
              help="Dataset only: store colour-corrected frames and backgrounds (color_calibration.json; at a level "
                   "after the area average, as the official load_image).")
@codec_option
@click.option("--frames-per-chunk", type=click.IntRange(min=1), default=1, show_default=True,
              help="Frames per zarr chunk (the unit of a random read).")
@click.option("--frames-per-shard", type=click.IntRange(min=1), default=32, show_default=True,
              help="Frames per shard (the unit of a file on disk).")
@scheduler_option
@workers_option
@handle_errors
def convert(root, store, benchmarks, participants, sequences, cameras, level, colour_correct, codec,
            frames_per_chunk, frames_per_shard, scheduler, workers):
    """Convert the fetched benchmark or dataset under ROOT into the zarr v3 STORE (resumable)."""
    from nersemble_zarr.convert import Chunking, DatasetOptions, convert as run_convert
    from nersemble_zarr.parallel import connect

    from .progress import progress_bar

    with connect(scheduler) as client, progress_bar("convert", "video") as progress:
        summary = run_convert(
            root, store,
            benchmarks=tuple(benchmarks) or None,
            participants=tuple(participants) or None,
            sequences=tuple(sequences) or None,
            codec=codec,
            chunking=Chunking(frames_per_chunk, frames_per_shard),
            workers=workers,
            client=client,
            progress=progress,
            dataset=DatasetOptions(tuple(cameras) or None, level, colour_correct),
            map_large_blocks=True,  # this process is the CLI's own: its allocator may be set for the run
        )
    from nersemble_zarr.units import counted

    click.echo(
        f"Converted {counted(len(summary.sequences), 'sequence')} into {store}: "
        f"{counted(summary.videos_written, 'video')} written, {summary.videos_skipped} already converted"
        + (f"; {counted(summary.images_written, 'SVFR image')} written, {summary.images_skipped} already converted."
           if summary.images_written or summary.images_skipped else ".")
    )
