"""What a fetch planned and did: per-file entries, progress events, the summary and its failure error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..errors import DownloadError
from ..units import human_bytes

Action = Literal["download", "resume", "skip", "failed"]
Outcome = Literal["downloaded", "skipped", "failed"]


@dataclass
class PlannedFile:
    """One file of the plan: path relative to the source's folder, remote size, local state, result."""

    path: str
    size: int | None = None  # Content-Length from HEAD (None if unknown)
    local_bytes: int = 0  # bytes already in a .part file that a resume keeps
    action: Action = "download"
    error: str | None = None  # short reason when the file failed
    status: int | None = None  # HTTP status of the server's refusal, when that was the failure

    @property
    def bytes_to_fetch(self) -> int:
        return 0 if self.action in ("skip", "failed") else max(0, (self.size or 0) - self.local_bytes)


@dataclass(frozen=True)
class ProgressEvent:
    """``plan``: ``nbytes`` more to download (sent once, and again when a restart discards bytes);
    ``bytes``: ``nbytes`` received; ``file``: ``path`` finished with ``outcome``."""

    kind: Literal["plan", "bytes", "file"]
    nbytes: int = 0
    path: str = ""
    outcome: Outcome | None = None


@dataclass
class FetchSummary:
    """Counts and bytes of one fetch (or of a dry run, where nothing is downloaded)."""

    source: str
    files: list[PlannedFile] = field(default_factory=list)
    dry_run: bool = False
    description: str = ""  # the source in words ("the nvs benchmark")
    free_bytes: int | None = None  # free space at ROOT when the plan was made
    downloaded: int = 0
    skipped: int = 0
    bytes_downloaded: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> list[PlannedFile]:
        return [f for f in self.files if f.action == "failed"]

    @property
    def bytes_total(self) -> int:
        """Remote size of every planned file whose size is known."""
        return sum(f.size or 0 for f in self.files)

    @property
    def bytes_to_fetch(self) -> int:
        return sum(f.bytes_to_fetch for f in self.files)

    def by_participant(self) -> dict[str, tuple[int, int]]:
        """Participant folder (``017``; ``""`` for files outside one) -> (files, bytes of known size), in plan order."""
        totals: dict[str, tuple[int, int]] = {}
        for entry in self.files:
            folder = entry.path.split("/", 1)[0] if "/" in entry.path else ""
            count, size = totals.get(folder, (0, 0))
            totals[folder] = (count + 1, size + (entry.size or 0))
        return totals

    def line(self) -> str:
        """One human sentence summarising the run."""
        if self.dry_run:
            free = "" if self.free_bytes is None else f"; {human_bytes(self.free_bytes)} free at ROOT"
            return (
                f"{len(self.files)} files, {human_bytes(self.bytes_total)} ({self.bytes_total:,} B) in all; "
                f"{human_bytes(self.bytes_to_fetch)} to download, "
                f"{sum(f.action == 'skip' for f in self.files)} already complete, {len(self.failed)} unavailable"
                f"{free}."
            )
        rate = self.bytes_downloaded / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{len(self.files)} files: {self.downloaded} downloaded ({human_bytes(self.bytes_downloaded)} "
            f"in {self.seconds:.1f} s, {human_bytes(rate)}/s), {self.skipped} already complete, "
            f"{len(self.failed)} failed."
        )


class FetchIncomplete(DownloadError):
    """Some files failed; the others were fetched. ``summary`` holds every file's outcome."""

    def __init__(self, summary: FetchSummary) -> None:
        failed = summary.failed
        self.not_served = len(failed) == len(summary.files) and all(f.status == 404 for f in failed)
        if self.not_served:
            super().__init__(
                f"The server does not serve {summary.description or summary.source}: every one of the {len(failed)} "
                f"file(s) asked for (e.g. {summary.source}/{failed[0].path}) answered HTTP 404 Not Found, "
                "which a rerun does not change; check the access URL (and the participants asked for)."
            )
            self.summary = summary
            return
        listed = ", ".join(f"{summary.source}/{f.path} ({f.error})" for f in failed[:3])
        more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
        missing = all(f.status == 404 for f in failed)
        them = "it" if len(failed) == 1 else "them"
        advice = (f"the server does not have {them}, which a rerun does not change (leave {them} out of the selection)"
                  if missing else "rerun the same command to retry")
        super().__init__(
            f"Could not fetch {len(failed)} of {len(summary.files)} files: {listed}{more}; "
            f"the others are in place, {advice}."
        )
        self.summary = summary
