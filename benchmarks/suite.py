"""Run every benchmark once and write their one table into docs/performance.md.

    python -m benchmarks.suite --quick     # every benchmark's short setting (under 10 minutes on 2 idle cores)
    python -m benchmarks.suite             # the full settings (about an hour)

Each benchmark module runs in its own process with ``--rows FILE`` (and ``--quick``), printing its own
report; their rows, in order, become one Markdown table (``benchmarks.table.markdown_table``). The table is
printed and, when every benchmark ran, written into docs/performance.md between the lines
``<!-- benchmark-table:start -->`` and ``<!-- benchmark-table:end -->``, under a line with the command, the
date and the machine; the rest of the page is kept byte for byte and the page is replaced atomically.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.table import Row, markdown_table, read_rows
from nersemble_zarr.atomic import write_atomic

MODULES = ("bench_convert", "bench_fetch", "bench_fetch_dataset", "bench_flame", "bench_export", "bench_export_frames",
           "bench_evaluate", "bench_svfr", "bench_compat", "bench_scaling", "bench_view", "bench_colour",
           "bench_dataset_convert", "backend_floor")
START, END = "<!-- benchmark-table:start -->", "<!-- benchmark-table:end -->"
PAGE = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


def replace_table(page: str, block: str) -> str:
    """``page`` with everything between its start and end marker lines replaced by ``block``.

    Raises ValueError unless the page has each marker exactly once, on a line of its own, start first.
    """
    lines = page.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == START]
    ends = [i for i, line in enumerate(lines) if line.strip() == END]
    if len(starts) != 1 or len(ends) != 1 or starts[0] > ends[0]:
        raise ValueError(f"The page needs one line {START} and, after it, one line {END} "
                         f"(found {len(starts)} and {len(ends)}).")
    if block and not block.endswith("\n"):
        block += "\n"
    return "".join(lines[: starts[0] + 1]) + block + "".join(lines[ends[0]:])


def write_table(page: Path, rows: list[Row], heading: str) -> None:
    """Write ``heading`` and the rows' table between the markers of ``page`` (atomically)."""
    text = page.read_bytes().decode("utf-8")  # not read_text: it would turn CRLF line ends into LF
    updated = replace_table(text, f"{heading}\n\n{markdown_table(rows)}")
    write_atomic(page, updated.encode("utf-8"))


def machine() -> str:
    """This machine in one line: cores, CPU model, memory, GPU."""
    model = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = "a GPU (nvidia-smi found)" if shutil.which("nvidia-smi") else "no GPU"
    return f"{os.cpu_count()} CPU cores ({model}), {memory_gib:.0f} GiB memory, {gpu}"


def run_module(module: str, rows: Path, quick: bool) -> tuple[bool, float]:
    """Run ``python -m benchmarks.MODULE --rows ROWS [--quick]``; (succeeded, seconds)."""
    command = [sys.executable, "-m", f"benchmarks.{module}", "--rows", str(rows)] + (["--quick"] if quick else [])
    print(f"\n=== {' '.join(command[2:])}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(command)
    return done.returncode == 0, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every benchmark's short setting")
    parser.add_argument("--only", nargs="+", choices=MODULES, help="run these benchmarks only (the page is not written)")
    parser.add_argument("--page", type=Path, default=PAGE, help="the page holding the table's markers")
    args = parser.parse_args()
    modules = args.only or MODULES
    write_page = args.only is None
    if write_page:
        replace_table(args.page.read_bytes().decode("utf-8"), "")  # refuse a page without markers before running
    command = " ".join(["python -m benchmarks.suite", *(["--quick"] if args.quick else []),
                        *(["--only", *args.only] if args.only else [])])
    started, load = datetime.datetime.now(datetime.timezone.utc), os.getloadavg()[0]
    timings, failed = [], []
    with tempfile.TemporaryDirectory(prefix="benchmark-suite-") as folder:
        rows_file = Path(folder) / "rows.jsonl"
        rows_file.touch()
        for module in modules:
            ok, seconds = run_module(module, rows_file, args.quick)
            timings.append(f"{module.removeprefix('bench_')} {seconds / 60:.1f}")
            if not ok:
                failed.append(module)
        rows = read_rows(rows_file)
    minutes = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds() / 60
    heading = (f"`{command}` on {started:%Y-%m-%d %H:%M} UTC, {machine()}; load average {load:.1f} at the start, "
               f"{os.getloadavg()[0]:.1f} at the end; {minutes:.1f} min in all (minutes per benchmark: "
               f"{', '.join(timings)}).")
    print(f"\n{heading}\n\n{markdown_table(rows)}")
    if failed:
        sys.exit(f"These benchmarks failed: {', '.join(failed)}; {args.page} was not written.")
    if write_page:
        write_table(args.page, rows, heading)
        print(f"Wrote the table into {args.page}.")


if __name__ == "__main__":
    main()
