"""One HTTP file at a time: size (HEAD), small reads, and resumable, atomic, retried downloads.

A download writes into ``<name>.part`` beside the final file, continues a ``.part`` with a Range request
when the server honours it (206 + matching Content-Range) and restarts from zero when it does not, checks
the final size against Content-Length, and only then renames the file into place. Timeouts, broken
connections, truncated bodies, 5xx and 429 are retried with exponential backoff (honouring Retry-After)
a bounded number of times; other HTTP errors fail at once. Error messages name the relative path, never
the URL, and never chain the underlying exception (its text contains the URL).
"""

from __future__ import annotations

import email.utils
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import requests
import urllib3
from requests.adapters import HTTPAdapter

from ..errors import Cancelled, ConfigError, DownloadError

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20  # largest body read per call; read1 returns what one socket read brings
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes \*/(\d+)$")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry temporary failures."""

    attempts: int = 5
    backoff_s: float = 1.0  # first wait; doubles after each failed attempt
    max_backoff_s: float = 60.0  # cap on any wait, including a server's Retry-After
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError(f"{self} is invalid; attempts must be at least 1 and waits non-negative.")

    def wait(self, failed_attempts: int, retry_after: float | None) -> float:
        """Seconds to wait after ``failed_attempts`` failures: backoff, or Retry-After if longer, capped."""
        backoff = self.backoff_s * 2 ** (failed_attempts - 1)
        return min(self.max_backoff_s, max(backoff, retry_after or 0.0))


class FileDownloadError(DownloadError):
    """A file that failed for good; ``path`` is ``{benchmark}/{relative path}``, ``reason`` a short phrase."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"Could not fetch {path}: {reason}.")
        self.path = path
        self.reason = reason


class _Transient(Exception):
    """A failure worth retrying (timeout, broken connection, truncated body, 5xx, 429)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Downloader:
    """Talks to ``{base_url}/{benchmark}/``: one requests session per thread, shared retry policy."""

    def __init__(
        self,
        base_url: str,
        benchmark: str,
        policy: RetryPolicy = RetryPolicy(),
        chunk_size: int = CHUNK_SIZE,
        on_bytes: Callable[[int], None] | None = None,
        on_discard: Callable[[int], None] | None = None,
    ) -> None:
        self._base = f"{base_url.rstrip('/')}/{benchmark}"
        self.benchmark = benchmark
        self.policy = policy
        self.chunk_size = chunk_size
        self._on_bytes = on_bytes or (lambda n: None)
        self._on_discard = on_discard or (lambda n: None)
        self.stop = threading.Event()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "Downloader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    # ------------------------------------------------------------------ public operations
    def remote_size(self, path: str) -> int | None:
        """Content-Length of ``path`` from a HEAD request (None if the server does not say)."""

        def head() -> int | None:
            with self._request("HEAD", path, {}) as response:
                length = response.headers.get("Content-Length")
                return int(length) if length is not None and length.isdigit() else None

        return self._retrying(path, head)

    def read(self, path: str) -> bytes:
        """The whole (small) file ``path`` in memory, checked against Content-Length."""

        def get() -> bytes:
            with self._request("GET", path, {}) as response:
                body = b"".join(self._stream(response, path))
                _check_length(len(body), _content_length(response))
                return body

        return self._retrying(path, get)

    def download(self, path: str, target: Path, expected_size: int | None = None, resume: bool = True) -> int:
        """Fetch ``path`` into ``target`` via ``target.part`` (continued if ``resume``); returns bytes received."""
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        if not resume:
            part.unlink(missing_ok=True)
        received = [0]
        try:
            self._retrying(path, lambda: self._download_once(path, target, part, expected_size, received))
        except OSError as error:  # writing locally failed (disk full, permissions); never a request error here
            reason = error.strerror or type(error).__name__
            raise self._failure(path, f"writing {part.name} failed ({reason})") from None
        return received[0]

    # ------------------------------------------------------------------ internals
    def _download_once(self, path: str, target: Path, part: Path, expected: int | None, received: list[int]) -> None:
        offset = part.stat().st_size if part.exists() else 0
        if expected is not None and offset > expected:
            self._discard(part)
            offset = 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with self._request("GET", path, headers, allow_416=bool(offset)) as response:
            if response.status_code == 416:
                total = _unsatisfied_total(response)
                if total is not None and total == offset and expected in (None, total):
                    os.replace(part, target)  # the .part was already complete
                    return
                self._discard(part)
                raise _Transient("the server refused to resume; starting over", retry_after=0)
            if response.status_code == 206:
                start, total = _content_range(response)
                if start != offset:
                    self._discard(part)
                    raise _Transient(f"the server resumed at byte {start} instead of {offset}; starting over")
                mode = "ab"
            else:  # 200: a fresh download, or a server that ignores Range
                if offset:
                    log.info("%s/%s: the server ignored the Range request; starting over", self.benchmark, path)
                    self._discard(part)
                    offset = 0
                total, mode = _content_length(response), "wb"
            if expected is not None and total is not None and total != expected:
                self._discard(part)
                raise self._failure(path, f"the server announced {total} bytes but its HEAD said {expected}")
            with open(part, mode) as handle:
                for chunk in self._stream(response, path):
                    handle.write(chunk)
                    received[0] += len(chunk)
                    self._on_bytes(len(chunk))
        size = part.stat().st_size
        _check_length(size, total if total is not None else expected)
        os.replace(part, target)

    def _stream(self, response: requests.Response, path: str) -> Iterator[bytes]:
        """Body chunks as they arrive, so a broken connection loses none of the bytes already received.

        (``iter_content`` would buffer up to a whole chunk inside urllib3 and drop it on a broken
        connection.) Network failures become _Transient, a stop request Cancelled.
        """
        try:
            while chunk := response.raw.read1(self.chunk_size):
                if self.stop.is_set():
                    raise Cancelled(path)
                yield chunk
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError):
            raise _Transient("the connection broke mid-body") from None

    def _failure(self, path: str, reason: str) -> FileDownloadError:
        return FileDownloadError(f"{self.benchmark}/{path}", reason)

    def _discard(self, part: Path) -> None:
        """Delete a .part that cannot be continued, reporting its bytes as discarded."""
        if part.exists():
            self._on_discard(part.stat().st_size)
            part.unlink()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0))
            session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0))
            session.headers["Accept-Encoding"] = "identity"  # sizes must be the file's own bytes
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _request(self, method: str, path: str, headers: dict[str, str], allow_416: bool = False) -> requests.Response:
        """Send one request; transient statuses raise _Transient, other errors FileDownloadError."""
        timeout = (self.policy.connect_timeout_s, self.policy.read_timeout_s)
        try:
            response = self._session().request(
                method, f"{self._base}/{path}", headers=headers, stream=True, timeout=timeout, allow_redirects=True
            )
        except requests.Timeout:
            raise _Transient("the server did not answer in time") from None
        except requests.ConnectionError:
            raise _Transient("the connection failed") from None
        except requests.RequestException as error:
            raise self._failure(path, f"the request could not be made ({type(error).__name__})") from None
        status = response.status_code
        if status in (200, 206) or (status == 416 and allow_416):
            return response
        response.close()
        reason = f"HTTP {status} {response.reason or ''}".rstrip()
        if status in (408, 429) or status >= 500:
            raise _Transient(reason, _retry_after(response))
        hint = {401: "check your access URL", 403: "check your access URL", 404: "the server has no such file"}
        raise self._failure(path, f"the server answered {reason}" + (f" ({hint[status]})" if status in hint else ""))

    def _retrying(self, path: str, action: Callable):
        """Run ``action`` until it succeeds, retrying _Transient failures with backoff."""
        for attempt in range(1, self.policy.attempts + 1):
            if self.stop.is_set():
                raise Cancelled(path)
            try:
                return action()
            except _Transient as failure:
                if attempt == self.policy.attempts:
                    raise self._failure(
                        path, f"{failure.reason} (gave up after {attempt} attempts; rerun to resume)"
                    ) from None
                wait = self.policy.wait(attempt, failure.retry_after) if failure.retry_after != 0 else 0.0
                log.info("%s/%s: %s; retrying in %.1f s (%d attempts left)", self.benchmark, path, failure.reason, wait,
                            self.policy.attempts - attempt)
                if self.stop.wait(wait):
                    raise Cancelled(path) from None
        raise AssertionError("unreachable")


def _check_length(size: int, total: int | None) -> None:
    """A body shorter (or longer) than announced is a transient failure: the retry resumes or restarts."""
    if total is not None and size != total:
        raise _Transient(f"the body ended after {size} of {total} bytes")


def _content_length(response: requests.Response) -> int | None:
    length = response.headers.get("Content-Length")
    return int(length) if length is not None and length.isdigit() else None


def _content_range(response: requests.Response) -> tuple[int, int]:
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    if not match:
        raise _Transient("a partial answer came without a valid Content-Range")
    return int(match.group(1)), int(match.group(3))


def _unsatisfied_total(response: requests.Response) -> int | None:
    match = _UNSATISFIED_RANGE.match(response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), if the server sent one."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", value.strip()):
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
