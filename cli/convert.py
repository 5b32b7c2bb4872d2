"""`nersemble-zarr convert`: fetched folder -> chunked zarr v3 store."""

from __future__ import annotations

import click

from nersemble_zarr import catalogue

from .options import (
    CommaList, codec_option, handle_errors, list_option, participant_option, scheduler_option, workers_option,
)


@click.command()
@click.argument("root", type=click.Path(file_okay=False, exists=True))
@click.argument("store")
@list_option("--benchmark", "-b", "benchmarks", type=CommaList(catalogue.ALL_BENCHMARKS),
             help="Benchmark(s) to convert: repeatable or comma-separated; default: every benchmark fetched "
                  "under ROOT.")
@participant_option
@list_option("--sequence", "-s", "sequences",
             help="Sequence name(s): repeatable or comma-separated; default: all fetched.")
@codec_option
@click.option("--frames-per-chunk", type=click.IntRange(min=1), default=1, show_default=True,
              help="Frames per zarr chunk (the unit of a random read).")
@click.option("--frames-per-shard", type=click.IntRange(min=1), default=32, show_default=True,
              help="Frames per shard (the unit of a file on disk).")
@scheduler_option
@workers_option
@handle_errors
def convert(root, store, benchmarks, participants, sequences, codec, frames_per_chunk, frames_per_shard,
            scheduler, workers):
    """Convert the fetched benchmark under ROOT into the zarr v3 STORE (resumable)."""
    from nersemble_zarr.convert import Chunking, convert as run_convert
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
        )
    from nersemble_zarr.units import counted

    click.echo(
        f"Converted {counted(len(summary.sequences), 'sequence')} into {store}: "
        f"{counted(summary.videos_written, 'video')} written, {summary.videos_skipped} already converted"
        + (f"; {counted(summary.images_written, 'SVFR image')} written, {summary.images_skipped} already converted."
           if summary.images_written or summary.images_skipped else ".")
    )
