"""Options and error handling shared by every command, spelled the same everywhere."""

from __future__ import annotations

import functools
import logging
import re
import sys
import warnings
from typing import Callable

import click

from nersemble_zarr import catalogue
from nersemble_zarr.catalogue import RangeMember
from nersemble_zarr.frame_codecs import DEFAULT_FRAME_CODEC, FRAME_CODECS
from nersemble_zarr.errors import NersembleError, shown

debug_option = click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
workers_option = click.option(
    "--workers", "-j", type=click.IntRange(min=1), default=4, show_default=True, help="Parallel workers."
)


def overwrite_flag(help_text: str):
    """``--overwrite``, with what it replaces on this command (commands differ: re-download, recompute, replace)."""
    return click.option("--overwrite", is_flag=True, help=help_text)


overwrite_file_option = overwrite_flag("Replace an existing output file (without it, an existing file is refused).")
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


MAX_RANGE = 10_000  # ids one range may name


class CommaList(click.ParamType):
    """One use of a repeatable option: a value or comma-separated values (``a,b``), optionally from ``choices``."""

    name = "TEXT[,TEXT...]"

    def __init__(self, choices: tuple[str, ...] | None = None) -> None:
        self.choices = choices
        if choices:
            self.name = "{" + "|".join(choices) + "}[,...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = tuple(part.strip() for part in str(value).split(",") if part.strip())
        if not parts:
            self.fail(f"{shown(value)} names nothing; give one value or several separated by commas.", param, ctx)
        for part in parts:
            if self.choices and part not in self.choices:
                self.fail(f"{shown(part)} is not one of {', '.join(self.choices)}.", param, ctx)
        return parts


class IdList(click.ParamType):
    """One use of a repeatable id option: ``388``, ``388,422`` or a range ``17-30`` (both ends included; of a
    range, only the ids a benchmark has are taken)."""

    name = "ID[,ID|FROM-TO...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        if isinstance(value, int):
            return (value,)
        if str(value).strip().lower() == "all":
            return ()  # every participant: the same as no -p
        ids: list[int] = []
        for part in (part.strip() for part in str(value).split(",")):
            single = re.fullmatch(r"[0-9]{1,9}", part)
            span = re.fullmatch(r"([0-9]{1,9})\s*-\s*([0-9]{1,9})", part)
            if single:
                ids.append(int(part))
            elif span and int(span.group(1)) <= int(span.group(2)) < int(span.group(1)) + MAX_RANGE:
                ids.extend(map(RangeMember, range(int(span.group(1)), int(span.group(2)) + 1)))
            else:
                where = "" if part == str(value).strip() else f" (in {shown(value)})"
                self.fail(f"{shown(part)}{where} is not a valid integer id or a range FROM-TO of ids (FROM <= TO, "
                          f"at most {MAX_RANGE} ids), e.g. 388, 388,422 or 17-30.", param, ctx)
        return tuple(ids)


def joined(ctx: click.Context, param: click.Parameter, value) -> tuple:
    """The values of every use of a repeatable comma-list option, in order, each once (an id named on its own
    wins over the same id of a range)."""
    items: dict = {}
    for used in value or ():
        for item in used:
            if isinstance(items.get(item), RangeMember) and not isinstance(item, RangeMember):
                items[item] = item  # same place, now named on its own
            else:
                items.setdefault(item, item)
    return tuple(items.values())


def list_option(*declarations: str, type: click.ParamType | None = None, **settings):
    """A repeatable option whose uses may each be comma-separated (ids also take ranges): the one convention
    of every option that takes several values, e.g. ``-p 388,422 -p 17-30``."""
    return click.option(*declarations, multiple=True, type=type or CommaList(), callback=joined, **settings)


participant_option = list_option(
    "--participant", "-p", "participants", type=IdList(),
    help="Participant id(s): repeatable, comma-separated or a range (-p 388,422, -p 17-30), or 'all'; default: "
         "all participants of the benchmark.",
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
            _quiet_abandoned_zarr_work()
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("Interrupted; rerun the same command to resume.", err=True)
            _quiet_abandoned_zarr_work()
            sys.exit(130)

    return wrapper


def _quiet_abandoned_zarr_work() -> None:
    """Keep the one line just printed the last one: zarr abandons the other tasks of a read or write that failed or
    was interrupted, and at exit asyncio would log each with a traceback, and Python would warn of a coroutine an
    interrupt caught before it was scheduled ("was never awaited")."""
    logging.getLogger("asyncio").disabled = True
    warnings.filterwarnings("ignore", message=r"coroutine '.*' was never awaited", category=RuntimeWarning)


def configure_logging(verbose: int) -> None:
    """Send the package's log records to stderr at a level chosen by -v."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
