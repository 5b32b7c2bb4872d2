"""``nersemble-zarr fetch ROOT SOURCE``: download a benchmark's or the v2 dataset's files into ROOT in the
official layout."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from nersemble_zarr.errors import shown
from nersemble_zarr.sources import SOURCES

from .options import (
    configure_logging, handle_errors, list_option, overwrite_flag, participant_option, verbose_option,
    workers_option,
)

MAX_LISTED_MISSING = 20


class FramesType(click.ParamType):
    """``0``, ``0,3,6`` or ``all``."""

    name = "FRAMES"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        if value.strip().lower() == "all":
            return "all"
        try:
            return tuple(int(part) for part in value.split(",") if part.strip())
        except ValueError:
            self.fail(f"{shown(value)} is not 'all' or a comma-separated list of frame numbers such as 0,3,6.", param, ctx)


@click.command()
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.argument("source", metavar="SOURCE", type=click.Choice(list(SOURCES)))
@participant_option
@list_option("--sequence", "-s", "sequences",
             help="Sequence name(s), repeatable or comma-separated; default: every sequence the server lists for "
                  "each participant.")
@list_option("--cameras", "cameras", help="Camera serial(s), repeatable or comma-separated; default: all 16.")
@list_option(
    "--assets", "-a",
    help="Asset(s) to fetch: repeatable or comma-separated ('all' for every one); default: the official defaults "
         "(dataset: calibration, color_calibration, images, backgrounds).",
)
@click.option(
    "--pointcloud-frames", type=FramesType(), default="0", show_default=True,
    help="NVS point cloud frames by timestep (as in metadata.json): e.g. 0, 0,3,6 or all.",
)
@workers_option
@click.option("--dry-run", is_flag=True, help="List the files with their sizes and the total; download nothing.")
@click.option("--url", metavar="URL",
              help="Access URL, overriding $NERSEMBLE_BENCHMARK_URL ($NERSEMBLE_DATA_URL for the dataset) and the "
                   ".env file. Unsafe: other local users can read a command line, and shells keep it in their "
                   "history; prefer --url-file.")
@click.option("--url-file", metavar="PATH",
              help="Read the access URL from the first line of PATH ('-': standard input), overriding "
                   "$NERSEMBLE_BENCHMARK_URL ($NERSEMBLE_DATA_URL for the dataset) and the .env file.")
@overwrite_flag("Download every file again from its start, complete ones included (default: skip complete files, "
                "resume partial ones).")
@verbose_option
@handle_errors
def fetch(root: Path, source: str, participants: tuple[int, ...], sequences: tuple[str, ...],
          cameras: tuple[str, ...], assets: tuple[str, ...], pointcloud_frames, workers: int, dry_run: bool,
          url: str | None, url_file: str | None, overwrite: bool, verbose: int) -> None:
    """Download SOURCE's files into ROOT/SOURCE, resuming partial files and skipping complete ones. SOURCE is a
    benchmark (nvs, mono_flame_avatar, svfr) or the NeRSemble v2 dataset (dataset)."""
    from nersemble_zarr import fetch as fetching
    from nersemble_zarr.credentials import read_url_file

    if url is not None and url_file is not None:
        raise click.UsageError("Give the access URL with --url or with --url-file, not both.")
    configure_logging(verbose)
    if url_file is not None:
        url = read_url_file(url_file, SOURCES[source].access)
    chosen_assets = None if not assets else "all" if assets == ("all",) else list(assets)
    bar = _Bar(f"fetch {source}", enabled=not dry_run)
    try:
        try:
            summary = fetching.fetch(
                root, source, url=url, participants=participants or None, sequences=sequences or None,
                cameras=cameras or None, assets=chosen_assets, pointcloud_frames=pointcloud_frames, workers=workers,
                dry_run=dry_run, overwrite=overwrite, progress=bar.on_progress,
            )
        finally:
            bar.close()
    except fetching.FetchIncomplete as error:
        if not error.not_served:  # else the error is the whole story: nothing of the source is there
            _report(error.summary)
            if not dry_run:
                _report_missing(error.summary)
        raise
    _report(summary)


class _Bar:
    """One tqdm bar of bytes on a terminal, opened at the first downloaded bytes (no empty bar)."""

    def __init__(self, description: str, enabled: bool) -> None:
        self.description, self.enabled, self.bar, self.planned = description, enabled, None, 0

    def on_progress(self, event) -> None:
        if not self.enabled or event.kind not in ("plan", "bytes"):
            return
        if event.kind == "plan":
            self.planned += event.nbytes
            if self.bar is not None:
                self.bar.total = self.planned
                self.bar.refresh()
            return
        if self.bar is None:  # the first bytes: nothing is drawn when there is nothing to download
            from tqdm import tqdm

            self.bar = tqdm(total=self.planned, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=self.description, dynamic_ncols=True, disable=None)  # None: only on a terminal
        self.bar.update(event.nbytes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _report(summary) -> None:
    """The summary line, after one line per planned file (its exact size in bytes as the server announces it,
    path below ROOT, action) and one total per participant for a dry run."""
    from nersemble_zarr.fetch import human_bytes

    if summary.dry_run:
        for entry in summary.files:
            size = "?" if entry.size is None else f"{entry.size:,} B"
            note = {"skip": "complete", "resume": f"resume after {entry.local_bytes:,} B",
                    "failed": entry.error, "download": ""}[entry.action]
            click.echo(f"{size:>17}  {summary.source}/{entry.path}" + (f"  ({note})" if note else ""))
        for folder, (count, size) in summary.by_participant().items():
            if folder:
                click.echo(f"{size:>15,} B  ({human_bytes(size)}) in all for {summary.source}/{folder}/ "
                           f"({count} files)")
    click.echo(summary.line())


def _report_missing(summary) -> None:
    """The files still missing (the first few) and the command that fetches exactly them."""
    failed = summary.failed
    click.echo(f"Missing {len(failed)} file(s):", err=True)
    for entry in failed[:MAX_LISTED_MISSING]:
        click.echo(f"  {summary.source}/{entry.path}  ({entry.error})", err=True)
    if len(failed) > MAX_LISTED_MISSING:
        click.echo(f"  ... and {len(failed) - MAX_LISTED_MISSING} more", err=True)
    click.echo(f"Resume with: {resume_command(sys.argv)}", err=True)


def resume_command(argv: list[str]) -> str:
    """The command line that ran, without a ``--url`` value (the URL is a secret: give it again as before)."""
    words, skip = ["nersemble-zarr"], False
    for word in argv[1:]:
        if skip:
            skip = False
        elif word == "--url":
            skip = True
        elif not word.startswith("--url="):
            words.append(word)
    return shlex.join(words)
