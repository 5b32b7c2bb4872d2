"""The options every benchmark shares: ``--quick`` (a short preset) and ``--rows FILE`` (the benchmark table).

    args = parse_benchmark_args(parser, quick={"frames": 100, "reads": 20})

``--quick`` replaces the defaults of the options named in ``quick``; an option given on the command line
still wins. ``benchmarks.suite`` runs every benchmark with ``--quick --rows FILE``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Mapping, Sequence


def parse_benchmark_args(
    parser: argparse.ArgumentParser, quick: Mapping[str, Any], argv: Sequence[str] | None = None
) -> argparse.Namespace:
    """Add ``--quick`` and ``--rows`` to ``parser`` and parse, with the ``quick`` defaults under ``--quick``."""
    preset = ", ".join(f"--{name.replace('_', '-')} {_shown(value)}" for name, value in quick.items())
    parser.add_argument("--quick", action="store_true", help=f"the short setting of the benchmark suite: {preset}")
    parser.add_argument("--rows", type=Path, default=None, help="append this run's rows of the benchmark table to FILE")
    known, _ = parser.parse_known_args(argv)
    if known.quick:
        parser.set_defaults(**quick)
    return parser.parse_args(argv)


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def add_allocator_option(parser: argparse.ArgumentParser) -> None:
    """``--allocator``: ``mapped`` (the default) converts as the CLI's local convert does
    (``convert(map_large_blocks=True)``), ``glibc`` with glibc's malloc defaults."""
    parser.add_argument("--allocator", choices=["mapped", "glibc"], default="mapped",
                        help="convert's malloc setting: as the CLI (mapped) or glibc's defaults (glibc)")
