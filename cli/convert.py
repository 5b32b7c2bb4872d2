"""`nersemble-zarr convert`: fetched folder -> chunked zarr v3 store."""

from __future__ import annotations

import click

from .options import handle_errors, participant_option, workers_option


@click.command()
@click.argument("root", type=click.Path(file_okay=False, exists=True))
@click.argument("store")
@click.option("--benchmark", "-b", "benchmarks", multiple=True, type=click.Choice(["nvs", "mono_flame_avatar", "svfr"]),
              help="Benchmark to convert (repeatable); default: every benchmark fetched under ROOT.")
@participant_option
@click.option("--sequence", "-s", "sequences", multiple=True, help="Sequence name (repeatable); default: all fetched.")
@click.option("--codec", default="zstd", show_default=True,
              type=click.Choice(["zstd", "lz4", "jpegxl-lossless", "jpegxl"]),
              help="How frames are stored: zstd (lossless, plain zarr), lz4 (lossless, plain zarr, faster, larger), "
                   "jpegxl-lossless, jpegxl (lossy, smallest).")
@click.option("--frames-per-chunk", type=click.IntRange(min=1), default=1, show_default=True,
              help="Frames per zarr chunk (the unit of a random read).")
@click.option("--frames-per-shard", type=click.IntRange(min=1), default=32, show_default=True,
              help="Frames per shard (the unit of a file on disk).")
@click.option("--scheduler", default=None, help="Address of a dask.distributed scheduler; default: local threads.")
@workers_option
@handle_errors
def convert(root, store, benchmarks, participants, sequences, codec, frames_per_chunk, frames_per_shard,
            scheduler, workers):
    """Convert the fetched benchmark under ROOT into the zarr v3 STORE (resumable)."""
    from tqdm import tqdm

    from nersemble_zarr.convert import Chunking, convert as run_convert
    from nersemble_zarr.parallel import connect

    bar = tqdm(total=0, unit="video", desc="convert", disable=None)
    client = connect(scheduler)
    try:
        summary = run_convert(
            root, store,
            benchmarks=tuple(benchmarks) or None,
            participants=tuple(participants) or None,
            sequences=tuple(sequences) or None,
            codec=codec,
            chunking=Chunking(frames_per_chunk, frames_per_shard),
            workers=workers,
            client=client,
            on_plan=lambda n: bar.reset(total=n),
            on_video_done=bar.update,
        )
    finally:
        bar.close()
        if client is not None:
            client.close()
    click.echo(
        f"Converted {len(summary.sequences)} sequences into {store}: "
        f"{summary.videos_written} videos written, {summary.videos_skipped} already converted"
        + (f"; {summary.images_written} SVFR images written, {summary.images_skipped} already converted."
           if summary.images_written or summary.images_skipped else ".")
    )
