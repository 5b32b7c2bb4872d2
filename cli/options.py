"""Options and error handling shared by every command, spelled the same everywhere."""

from __future__ import annotations

import functools
import logging
import re
import sys
from typing import Callable

import click

from nersemble_zarr import catalogue
from nersemble_zarr.frame_codecs import DEFAULT_FRAME_CODEC, FRAME_CODECS
from nersemble_zarr.errors import NersembleError, shown

debug_option = click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
workers_option = click.option(
    "--workers", "-j", type=click.IntRange(min=1), default=4, show_default=True, help="Parallel workers."
)
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace existing outputs instead of skipping them.")
overwrite_file_option = click.option(
    "--overwrite", is_flag=True, help="Replace an existing output file (without it, an existing file is refused)."
)
verbose_option = click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
benchmark_choice = click.Choice(catalogue.ALL_BENCHMARKS)
benchmark_argument = click.argument("benchmark", type=benchmark_choice)
codec_option = click.option(
    "--codec", default=DEFAULT_FRAME_CODEC, show_default=True, type=click.Choice(list(FRAME_CODECS)),
    help="How frames are stored. " + " ".join(f"{name}: {codec.description}." for name, codec in FRAME_CODECS.items()),
)
scheduler_option = click.option(
    "--scheduler", metavar="ADDRESS", default=None,
    help="Address of a dask.distributed scheduler (e.g. tcp://host:8786) whose workers run the tasks and see the "
         "same paths; default: local threads.",
)


class ParticipantId(click.ParamType):
    """A participant id such as 388; a refused value is quoted cut short (see errors.shown)."""

    name = "integer"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if not re.fullmatch(r"[0-9]{1,9}", text):
            self.fail(f"{shown(value)} is not a valid integer.", param, ctx)
        return int(text)


participant_option = click.option(
    "--participant", "-p", "participants", multiple=True, type=ParticipantId(),
    help="Participant id (repeatable); default: all participants of the benchmark.",
)


def handle_errors(command: Callable) -> Callable:
    """Decorate a command: add --debug and turn the package's errors into one line and an exit code."""

    @debug_option
    @functools.wraps(command)
    def wrapper(*args, debug: bool = False, **kwargs):
        try:
            return command(*args, **kwargs)
        except NersembleError as error:
            if debug:
                raise
            click.echo(f"Error: {error}", err=True)
            # zarr abandons the other tasks of a read that failed (a tampered array among a group's members, a
            # second corrupt chunk); asyncio would report each at exit with a traceback after this one line.
            logging.getLogger("asyncio").disabled = True
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("Interrupted; rerun the same command to resume.", err=True)
            logging.getLogger("asyncio").disabled = True  # zarr's abandoned writes, reported at exit (see above)
            sys.exit(130)

    return wrapper


def configure_logging(verbose: int) -> None:
    """Send the package's log records to stderr at a level chosen by -v."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
