"""Fetching a source's files from its server into ``ROOT/{source}/`` in the official folder layout.

``fetch`` checks the request against what the source knows before any network traffic, brings the source's
index files up to date (``nvs/metadata.json``; the dataset's two CSVs; SVFR has none: its images are listed in
the catalogue), plans the relative paths from the index, asks the server for each size (HEAD), skips complete
files, checks that what is missing fits on the disk, and downloads the rest in parallel, each resumable and
atomic (see ``download``). What a source is (its URL, index, assets, paths) is described in
``nersemble_zarr.sources``.
"""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal, TypeVar

from ..credentials import resolve_url
from ..errors import ConfigError, InputDataError
from ..locking import folder_lock
from ..sources import Listing, Source, get_source
from .content import read_head, signature_problem
from .download import Cancelled, Downloader, FileDownloadError, RetryPolicy
from .logsafety import redacted_logs, untrusted_text
from .partfile import plain_size
from .plan import FetchRequest, PointcloudFrames, local_path, make_request, plan_paths
from .summary import FetchIncomplete, FetchSummary, PlannedFile, ProgressEvent, human_bytes

INSPECT_WORKERS = 16  # HEAD requests in flight while planning: small answers, so more than the downloads' workers

__all__ = [
    "FetchIncomplete", "FetchRequest", "FetchSummary", "PlannedFile", "ProgressEvent", "RetryPolicy",
    "fetch", "human_bytes", "make_request",
]


def fetch(
    root: str | Path,
    source: str,
    *,
    url: str | None = None,
    participants: Iterable[int] | Literal["all"] | None = None,
    sequences: Iterable[str] | None = None,
    cameras: Iterable[str] | None = None,
    assets: Iterable[str] | str | None = None,
    pointcloud_frames: PointcloudFrames = (0,),
    workers: int = 4,
    dry_run: bool = False,
    overwrite: bool = False,
    progress: Callable[[ProgressEvent], None] | None = None,
    retry: RetryPolicy = RetryPolicy(),
) -> FetchSummary:
    """Fetch a source's files (a benchmark, or ``"dataset"``) into ``root/{source}``; raises FetchIncomplete
    if any file failed (the others are fetched all the same).

    ``participants`` (None or ``"all"`` = every one the server lists), ``sequences`` and ``cameras`` (None =
    all), ``assets`` (None = the official defaults, or ``"all"``) and ``pointcloud_frames`` (NVS: timestep labels
    as in metadata.json, or ``"all"``) are checked against what the source knows before any request, and
    against its index after that. ``url`` overrides the configured access URL of the source. With ``dry_run``
    nothing is written; the summary lists files, exact sizes and the free space at ``root``. A run whose missing
    bytes do not fit in the free space raises ConfigError before writing anything. One fetch of a source into a
    ROOT runs at a time: another one raises LockError naming its process.
    """
    described = get_source(source)
    request = make_request(source, participants, assets, pointcloud_frames, sequences, cameras)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers={workers!r} is invalid; expected a whole number of at least 1.")
    base_url = resolve_url(url, described.access)
    started = time.perf_counter()
    report = _locked(progress)
    summary = FetchSummary(source, dry_run=dry_run, description=described.description)
    with _root_lock(Path(root), source, dry_run), redacted_logs(base_url), Downloader(
        base_url, source,
        retry,
        on_bytes=lambda n: report(ProgressEvent("bytes", n)),
        on_discard=lambda n: report(ProgressEvent("plan", n)),
        url_path=described.url_path,
    ) as downloader:
        try:
            listing = _index(described, downloader, Path(root), summary, overwrite, report)
            planned = _inspect(downloader, Path(root), plan_paths(request, listing), overwrite,
                               max(workers, INSPECT_WORKERS))
            summary.files += planned
            summary.skipped += sum(f.action == "skip" for f in planned)
            summary.free_bytes = _free_bytes(Path(root))
            if not dry_run:
                _check_space(summary, Path(root))
            report(ProgressEvent("plan", sum(f.bytes_to_fetch for f in planned)))
            if not dry_run:
                _download_all(downloader, Path(root), planned, summary, workers, report)
        except (KeyboardInterrupt, Cancelled):
            downloader.stop.set()
            raise KeyboardInterrupt from None
    summary.seconds = time.perf_counter() - started
    if summary.failed:
        raise FetchIncomplete(summary)
    return summary


def _free_bytes(root: Path) -> int | None:
    """Free bytes on the disk that holds ROOT (its nearest existing folder), or None when unknown."""
    folder = root
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _check_space(summary: FetchSummary, root: Path) -> None:
    """Refuse, before writing, a run whose missing bytes do not fit in the free space at ROOT."""
    needed = summary.bytes_to_fetch
    if summary.free_bytes is not None and needed > summary.free_bytes:
        raise ConfigError(
            f"The selection needs {human_bytes(needed)} more but only {human_bytes(summary.free_bytes)} are free "
            f"at {root}; free some space or fetch fewer participants, sequences or cameras."
        )


def _root_lock(root: Path, source: str, dry_run: bool):
    """The advisory lock of ``ROOT`` for this source (fetches of different sources write different folders and
    may run together); a dry run writes nothing and takes none."""
    if dry_run:
        return nullcontext()
    return folder_lock(root, f".nersemble_zarr-fetch-{source}.lock", f"fetch of {source} into {root}")


def _locked(progress: Callable[[ProgressEvent], None] | None) -> Callable[[ProgressEvent], None]:
    """Serialise progress callbacks coming from worker threads."""
    if progress is None:
        return lambda event: None
    lock = threading.Lock()

    def report(event: ProgressEvent) -> None:
        with lock:
            progress(event)

    return report


def _index(
    source: Source,
    downloader: Downloader,
    root: Path,
    summary: FetchSummary,
    overwrite: bool,
    report: Callable[[ProgressEvent], None],
) -> Listing:
    """Bring the source's index files up to date (in memory only for a dry run) and parse them."""
    index = {path: _index_file(downloader, root, path, summary, overwrite, report) for path in source.index_files}
    try:
        return source.listing(index)
    except InputDataError as error:  # its text may quote the server's: clean it like any server text
        raise InputDataError(untrusted_text(str(error), downloader.url, limit=None)) from None


def _index_file(
    downloader: Downloader,
    root: Path,
    path: str,
    summary: FetchSummary,
    overwrite: bool,
    report: Callable[[ProgressEvent], None],
) -> bytes:
    """The bytes of one index file: the local copy when complete, else downloaded (read only for a dry run)."""
    entry = _inspect_one(downloader, root, path, overwrite)
    if entry.action == "failed":
        raise FileDownloadError(f"{downloader.source}/{path}", entry.error or "unavailable")
    target = local_path(root, downloader.source, path)
    if entry.action == "skip":
        raw = target.read_bytes()
        summary.skipped += 1
    elif summary.dry_run:
        raw = downloader.read(path)
    else:
        report(ProgressEvent("plan", entry.bytes_to_fetch))
        summary.bytes_downloaded += downloader.download(path, target, entry.size, resume=entry.action == "resume")
        summary.downloaded += 1
        raw = target.read_bytes()
    summary.files.append(entry)
    return raw


def _inspect(downloader: Downloader, root: Path, paths: list[str], overwrite: bool, workers: int) -> list[PlannedFile]:
    """HEAD every path in parallel and decide per file: skip, resume, download, or failed."""
    planned: list[PlannedFile | None] = [None] * len(paths)
    with _pool(downloader, workers) as pool:
        for index, done in _windowed(pool, lambda i: _inspect_one(downloader, root, paths[i], overwrite),
                                     range(len(paths)), workers):
            planned[index] = done.result()
    return planned


def _inspect_one(downloader: Downloader, root: Path, path: str, overwrite: bool) -> PlannedFile:
    """Skip a complete file (a regular file of the remote size whose first bytes fit its kind; never a
    symlink), resume a ``.part`` that is a regular file with one link and no longer than the remote file."""
    target = local_path(root, downloader.source, path)
    part = target.with_name(target.name + ".part")
    try:
        size = downloader.remote_size(path)
    except FileDownloadError as error:
        return PlannedFile(path, action="failed", error=error.reason, status=error.status)
    if overwrite:
        return PlannedFile(path, size)  # "download" starts from zero, dropping any .part
    if _complete(path, target, size):
        return PlannedFile(path, size, action="skip")
    kept = plain_size(part)
    if kept is not None and (size is None or kept <= size):
        return PlannedFile(path, size, local_bytes=kept, action="resume")
    return PlannedFile(path, size)


def _complete(path: str, target: Path, size: int | None) -> bool:
    """A regular file (not a symlink) of the remote size whose first bytes fit its kind."""
    if size is None or plain_size(target, single_link=False) != size:
        return False
    try:
        return signature_problem(path, read_head(target)) is None
    except OSError:  # unreadable: download it again
        return False


def _download_all(
    downloader: Downloader,
    root: Path,
    planned: list[PlannedFile],
    summary: FetchSummary,
    workers: int,
    report: Callable[[ProgressEvent], None],
) -> None:
    """Download every planned file that is not complete; failures are recorded on the entry, not raised."""
    pending = [entry for entry in planned if entry.action in ("download", "resume")]
    with _pool(downloader, workers) as pool:
        fetch_one = lambda entry: downloader.download(  # noqa: E731
            entry.path, local_path(root, summary.source, entry.path), entry.size, resume=entry.action == "resume")
        for entry, done in _windowed(pool, fetch_one, pending, workers):
            try:
                summary.bytes_downloaded += done.result()
                summary.downloaded += 1
                report(ProgressEvent("file", path=entry.path, outcome="downloaded"))
            except FileDownloadError as error:
                entry.action, entry.error, entry.status = "failed", error.reason, error.status
                report(ProgressEvent("file", path=entry.path, outcome="failed"))


Item = TypeVar("Item")


def _windowed(pool: ThreadPoolExecutor, work: Callable[[Item], object], items: Iterable[Item],
              workers: int) -> Iterator[tuple[Item, Future]]:
    """Run ``work`` on every item, with at most ``2 * workers`` submitted at a time (memory stays flat for a
    selection of any size); yields (item, its finished future) as each finishes."""
    queue = iter(items)
    running: dict[Future, Item] = {}

    def submit_next() -> None:
        for item in queue:
            running[pool.submit(work, item)] = item
            return

    for _ in range(2 * workers):
        submit_next()
    while running:
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            item = running.pop(future)
            submit_next()
            yield item, future


@contextmanager
def _pool(downloader: Downloader, workers: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool that, when the caller is interrupted, stops running downloads and drops queued ones."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nersemble-fetch")
    try:
        yield pool
    except BaseException:
        downloader.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
