"""``nersemble-zarr fetch ROOT BENCHMARK``: download benchmark assets into ROOT in the official layout."""

from __future__ import annotations

from pathlib import Path

import click

from nersemble_zarr.errors import shown

from .options import (
    benchmark_argument, configure_logging, handle_errors, list_option, overwrite_flag, participant_option,
    verbose_option, workers_option,
)


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
@benchmark_argument
@participant_option
@list_option(
    "--assets", "-a",
    help="Asset(s) to fetch: repeatable or comma-separated ('all' for every one); default: the official defaults.",
)
@click.option(
    "--pointcloud-frames", type=FramesType(), default="0", show_default=True,
    help="NVS point cloud frames by timestep (as in metadata.json): e.g. 0, 0,3,6 or all.",
)
@workers_option
@click.option("--dry-run", is_flag=True, help="List the files with their sizes and the total; download nothing.")
@click.option("--url", metavar="URL",
              help="Access URL, overriding $NERSEMBLE_BENCHMARK_URL and the .env file. Unsafe: other local users "
                   "can read a command line, and shells keep it in their history; prefer --url-file.")
@click.option("--url-file", metavar="PATH",
              help="Read the access URL from the first line of PATH ('-': standard input), overriding "
                   "$NERSEMBLE_BENCHMARK_URL and the .env file.")
@overwrite_flag("Download every file again from its start, complete ones included (default: skip complete files, "
                "resume partial ones).")
@verbose_option
@handle_errors
def fetch(root: Path, benchmark: str, participants: tuple[int, ...], assets: tuple[str, ...],
          pointcloud_frames, workers: int, dry_run: bool, url: str | None, url_file: str | None, overwrite: bool,
          verbose: int) -> None:
    """Download BENCHMARK's assets into ROOT/BENCHMARK, resuming partial files and skipping complete ones."""
    from nersemble_zarr import fetch as fetching
    from nersemble_zarr.credentials import read_url_file

    if url is not None and url_file is not None:
        raise click.UsageError("Give the access URL with --url or with --url-file, not both.")
    configure_logging(verbose)
    if url_file is not None:
        url = read_url_file(url_file)
    chosen_assets = None if not assets else "all" if assets == ("all",) else list(assets)
    bar = _Bar(f"fetch {benchmark}", enabled=not dry_run)
    try:
        try:
            summary = fetching.fetch(
                root, benchmark, url=url, participants=participants or None, assets=chosen_assets,
                pointcloud_frames=pointcloud_frames, workers=workers, dry_run=dry_run, overwrite=overwrite,
                progress=bar.on_progress,
            )
        finally:
            bar.close()
    except fetching.FetchIncomplete as error:
        if not error.not_served:  # else the error is the whole story: nothing of the benchmark is there
            _report(error.summary)
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
    """The summary line, after one line per planned file (size, path below ROOT, action) for a dry run."""
    from nersemble_zarr.fetch import human_bytes

    if summary.dry_run:
        for entry in summary.files:
            size = "?" if entry.size is None else human_bytes(entry.size)
            note = {"skip": "complete", "resume": f"resume after {human_bytes(entry.local_bytes)}",
                    "failed": entry.error, "download": ""}[entry.action]
            click.echo(f"{size:>10}  {summary.benchmark}/{entry.path}" + (f"  ({note})" if note else ""))
    click.echo(summary.line())
