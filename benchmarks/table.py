"""The one benchmark table: each benchmark reports rows, ``benchmarks.suite`` gathers them.

A row says what was measured, our figure, the baseline's figure measured in the same run, the ratio
(how many times better ours is: a speed-up > 1 is faster), the limit it is held against (a hardware or
arithmetic bound, or a target) and the peak resident memory of ours / the baseline.
A benchmark run with ``--rows FILE`` appends its rows to FILE as JSON lines.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    """One line of the benchmark table."""

    benchmark: str
    what: str
    ours: str
    baseline: str
    ratio: float
    limit: str
    peak_mib: str


def append_rows(path: Path | None, rows: list[Row]) -> None:
    """Append ``rows`` to the JSON-lines file ``path`` (nothing when ``path`` is None)."""
    if path is None:
        return
    with open(path, "a", encoding="utf-8") as file:
        for row in rows:
            file.write(json.dumps(asdict(row)) + "\n")


def read_rows(path: Path) -> list[Row]:
    """The rows a run appended to ``path``, in order."""
    return [Row(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def markdown_table(rows: list[Row]) -> str:
    """The rows as one Markdown table."""
    lines = ["| benchmark | what | ours | baseline | ratio | limit | peak RSS (ours / baseline) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.benchmark} | {r.what} | {r.ours} | {r.baseline} | {r.ratio:.2f} | {r.limit} | {r.peak_mib} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def peak_pair(ours: dict, baseline: dict) -> str:
    """``ours / baseline MiB`` from two phase results carrying ``peak_rss_mib``."""
    return f"{ours['peak_rss_mib']:.0f} / {baseline['peak_rss_mib']:.0f} MiB"
