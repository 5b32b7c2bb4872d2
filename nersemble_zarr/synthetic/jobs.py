"""Independent units of synthetic file writing, run in this process or in a pool of processes, each file reported
to a progress as it is written. Shared by the benchmark's and the dataset's generators."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from ..progress import Progress, advance, describe, set_total


@dataclass(frozen=True)
class Job:
    """One unit of work: ``write(root)`` writes ``files`` (paths relative to the root)."""

    files: tuple[str, ...]
    write: Callable[[Path], None]


def job(files: str | tuple[str, ...], write: Callable[..., None], **arguments) -> Job:
    """A Job calling the module-level ``write(root, **arguments)`` (picklable, so it runs in another process)."""
    return Job((files,) if isinstance(files, str) else files, partial(write, **arguments))


def run_jobs(root: Path, jobs: list[Job], *, workers: int = 1, progress: Progress | None = None) -> None:
    """Run every job on ``root``: in order in this process (``workers`` 1) or spread over ``workers`` processes.

    ``progress`` is told the number of files (``set_total``), then each file's relative path (``describe``) and
    called with 1 once it is written.
    """
    set_total(progress, sum(len(job.files) for job in jobs))

    def report(done: Job) -> None:
        for relative in done.files:
            describe(progress, relative)
            advance(progress, 1)

    if workers <= 1:
        for each in jobs:
            each.write(root)
            report(each)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(each.write, root): each for each in jobs}
        try:
            for future in as_completed(futures):
                future.result()
                report(futures[future])
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
