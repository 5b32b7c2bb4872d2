"""One HTTP file at a time: size (HEAD), small reads, and resumable, atomic, retried downloads.

A download writes into ``<name>.part`` beside the final file (never through a link, see ``partfile``),
continues a ``.part`` with a Range request when the server honours it (206 + matching Content-Range) and
restarts from zero when it does not, stops reading at the announced size, checks the final size against
Content-Length and the file's own structure for its kind (``content``), and only then renames the file
into place. A small kind (JSON, CSV, npz, png) never takes more than its size ceiling (``content.SIZE_CEILINGS``)
on disk or in memory, whatever the server announces. Numeric headers (Content-Length, Content-Range,
Retry-After) are read strictly: ASCII digits of a bounded length, else the answer is malformed. A body slower
than ``RetryPolicy.stall_min_bytes`` per ``stall_window_s`` is a stalled connection. Timeouts, broken
connections, stalls, truncated or malformed answers, 5xx and 429 are retried with exponential backoff
(honouring Retry-After) a bounded number of times; other HTTP errors, oversized files, web pages and
compressed bodies fail at once. Error messages name the relative path, never the URL, never chain the
underlying exception (its text contains the URL), and show server text only through ``untrusted_text``.
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
from ..units import counted
from .content import (
    HEAD_BYTES, WEB_PAGE_PROBLEM, looks_like_web_page, signature_problem, size_ceiling, structure_problem,
)
from .logsafety import untrusted_text
from .partfile import PartFile, plain_size, remove

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20  # largest body read per call; read1 returns what one socket read brings
READ_LIMIT = 64 << 20  # largest body ``read`` keeps in memory (metadata.json is a few KiB)
WEB_PAGE = ("the server answered with a web page instead of the file (an expired access link or a login page?); "
            "check your access URL")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_UNUSABLE_ADDRESS = (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                     requests.exceptions.MissingSchema, urllib3.exceptions.LocationValueError, UnicodeError)
_NUMBER = "([0-9]{1,19})"  # ASCII digits only (str.isdigit and int() take other scripts' digits), int64-sized
_CONTENT_LENGTH = re.compile(_NUMBER)
_CONTENT_RANGE = re.compile(f"bytes {_NUMBER}-{_NUMBER}/{_NUMBER}")
_UNSATISFIED_RANGE = re.compile(f"bytes \\*/{_NUMBER}")
_SECONDS = re.compile(r"[0-9]{1,10}(\.[0-9]{1,6})?")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry temporary failures."""

    attempts: int = 5
    backoff_s: float = 1.0  # first wait; doubles after each failed attempt
    max_backoff_s: float = 60.0  # cap on any wait, including a server's Retry-After
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0  # longest wait for any single read (covers a silent server)
    # A body must bring at least stall_min_bytes in every stall_window_s seconds, else the attempt has failed.
    stall_window_s: float = 30.0
    stall_min_bytes: int = 32 << 10

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ConfigError(f"{self} is invalid; attempts must be at least 1 and waits non-negative.")
        if not self.stall_window_s > 0 or self.stall_min_bytes < 0:
            raise ConfigError(f"{self} is invalid; the stall window must be positive and its bytes non-negative.")

    def wait(self, failed_attempts: int, retry_after: float | None) -> float:
        """Seconds to wait after ``failed_attempts`` failures: backoff, or Retry-After if longer, capped."""
        backoff = self.backoff_s * 2 ** (failed_attempts - 1)
        return min(self.max_backoff_s, max(backoff, retry_after or 0.0))


class FileDownloadError(DownloadError):
    """A file that failed for good; ``path`` is ``{source}/{relative path}``, ``reason`` a short phrase."""

    def __init__(self, path: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"Could not fetch {path}: {reason}.")
        self.path = path
        self.reason = reason
        self.status = status  # the HTTP status of a refusal (404, 403, ...), None for other failures


class _Transient(Exception):
    """A failure worth retrying (timeout, broken connection, truncated body, 5xx, 429)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Downloader:
    """Talks to ``{base_url}/{url_path}/`` for the source ``source`` (``url_path``: the source's folder below the
    access URL, the source's name by default): one requests session per thread, shared retry policy."""

    def __init__(
        self,
        base_url: str,
        source: str,
        policy: RetryPolicy = RetryPolicy(),
        chunk_size: int = CHUNK_SIZE,
        on_bytes: Callable[[int], None] | None = None,
        on_discard: Callable[[int], None] | None = None,
        url_path: str | None = None,
    ) -> None:
        self.url = base_url  # to redact from server text; never shown
        url_path = source if url_path is None else url_path
        self._base = "/".join(part for part in (base_url.rstrip("/"), url_path) if part)
        self.source = source
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
                self._check_representation(path, response)
                return self._within_ceiling(path, _content_length(response))

        return self._retrying(path, head)

    def read(self, path: str) -> bytes:
        """The whole (small) file ``path`` in memory, checked against Content-Length."""

        def get() -> bytes:
            with self._request("GET", path, {}) as response:
                self._check_representation(path, response)
                announced = self._within_ceiling(path, _content_length(response))
                ceiling = min(READ_LIMIT, size_ceiling(path) or READ_LIMIT)
                body = bytearray()
                for chunk in self._stream(response, path):
                    body += chunk
                    if announced is not None and len(body) > announced:
                        raise _Transient(f"the server sent more than the {announced} bytes it announced")
                    self._within_ceiling(path, len(body), ceiling, sent=True)
                _check_length(len(body), announced)
                problem = signature_problem(path, bytes(body[:HEAD_BYTES]))
                if problem == WEB_PAGE_PROBLEM:
                    raise self._failure(path, WEB_PAGE)
                if problem:  # as a download's body check: perhaps a glitch, so retried
                    raise _Transient(f"the received file is unusable: {problem}")
                return bytes(body)

        return self._retrying(path, get)

    def download(self, path: str, target: Path, expected_size: int | None = None, resume: bool = True) -> int:
        """Fetch ``path`` into ``target`` via ``target.part`` (continued if ``resume``); returns bytes received."""
        part = target.with_name(target.name + ".part")
        received = [0]
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if not resume:
                remove(part)
            self._retrying(path, lambda: self._download_once(path, target, part, expected_size, received))
        except OSError as error:  # writing locally failed (disk full, permissions); never a request error here
            reason = error.strerror or type(error).__name__
            raise self._failure(path, f"writing {part.name} failed ({reason})") from None
        finally:
            if plain_size(part) == 0:  # nothing worth resuming
                remove(part)  # (a regular file: removing it cannot fail on a folder)
        return received[0]

    # ------------------------------------------------------------------ internals
    def _download_once(self, path: str, target: Path, part_path: Path, expected: int | None,
                       received: list[int]) -> None:
        with PartFile(part_path) as part:
            if part.replaced_bytes:
                self._on_discard(part.replaced_bytes)
            offset = part.size
            if expected is not None and offset > expected:
                self._discard(part)
                offset = 0
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            with self._request("GET", path, headers, allow_416=bool(offset)) as response:
                if response.status_code == 416:
                    total = _unsatisfied_total(response)
                    if not (total is not None and total == offset and expected in (None, total)):
                        self._discard(part)
                        raise _Transient("the server refused to resume; starting over", retry_after=0)
                    announced = total  # the .part was already complete
                else:
                    announced = self._receive(path, response, part, offset, expected, received)
                labelled_html = _is_html(response)
            size = part.size
        _check_length(size, announced)
        self._land(path, part_path, target, labelled_html)

    def _receive(self, path: str, response: requests.Response, part: PartFile, offset: int,
                 expected: int | None, received: list[int]) -> int | None:
        """Append the body of a 206 (or restart the .part with a 200) up to the announced size; returns that size."""
        self._check_representation(path, response)
        if response.status_code == 206:
            start, total = _content_range(response)
            if start != offset:
                self._discard(part)
                raise _Transient(f"the server resumed at byte {start} instead of {offset}; starting over")
            restart = False
        else:  # 200: a fresh download, or a server that ignores Range
            total, restart = _content_length(response), offset > 0
            offset = 0
        if expected is not None and total is not None and total != expected:
            self._discard(part)
            raise self._failure(path, f"the server announced {total} bytes but its HEAD said {expected}")
        announced = self._within_ceiling(path, total if total is not None else expected)
        ceiling = size_ceiling(path)
        written = 0
        for chunk in self._stream(response, path):
            if written == 0 and offset == 0 and looks_like_web_page(chunk[:HEAD_BYTES]):
                raise self._failure(path, WEB_PAGE)  # before touching the .part: what it holds stays
            if restart:
                log.info("%s/%s: the server ignored the Range request; starting over", self.source, path)
                self._discard(part)
                restart = False
            if announced is not None and offset + written + len(chunk) > announced:
                self._discard(part)
                raise _Transient(f"the server sent more than the {announced} bytes it announced")
            if ceiling is not None and offset + written + len(chunk) > ceiling:
                self._discard(part)
                self._within_ceiling(path, offset + written + len(chunk), sent=True)
            part.append(chunk)
            written += len(chunk)
            received[0] += len(chunk)
            self._on_bytes(len(chunk))
        if restart:  # an empty body
            self._discard(part)
        return announced

    def _land(self, path: str, part: Path, target: Path, labelled_html: bool) -> None:
        """Rename a complete ``.part`` onto ``target`` if it passes the checks for its kind; else drop it.

        A body that fails them and is HTML (or came labelled text/html) is a web page: that fails for good.
        """
        problem = structure_problem(part, path)
        if problem is None:
            os.replace(part, target)  # replaces a link under the final name, never its target
            return
        self._on_discard(plain_size(part) or 0)
        remove(part)
        if problem == WEB_PAGE_PROBLEM or labelled_html:
            raise self._failure(path, WEB_PAGE)
        raise _Transient(f"the received file is unusable: {problem}")

    def _within_ceiling(self, path: str, size: int | None, ceiling: int | None = None,
                        sent: bool = False) -> int | None:
        """``size``, unless it is beyond the size ceiling of ``path``'s kind: that fails for good."""
        ceiling = size_ceiling(path) if ceiling is None else ceiling
        if size is None or ceiling is None or size <= ceiling:
            return size
        said = "sent more than" if sent else f"announced {size} bytes, more than"
        raise self._failure(path, f"the server {said} the {ceiling} bytes a {Path(path).suffix} file may have")

    def _check_representation(self, path: str, response: requests.Response) -> None:
        """Refuse, for good, a body that is not the file's own bytes: one with a Content-Encoding."""
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            shown = untrusted_text(encoding, self.url, limit=40)
            raise self._failure(path, f"the server sent it with Content-Encoding: {shown}, which fetch refuses "
                                      "(it asks for the file's own bytes)")

    def _stream(self, response: requests.Response, path: str) -> Iterator[bytes]:
        """Body chunks as they arrive, so a broken connection loses none of the bytes already received.

        (``iter_content`` would buffer up to a whole chunk inside urllib3 and drop it on a broken
        connection.) Network failures and a stall (fewer than ``stall_min_bytes`` in a ``stall_window_s``
        window) become _Transient, a stop request Cancelled.
        """
        window, least = self.policy.stall_window_s, self.policy.stall_min_bytes
        window_start, window_bytes = time.monotonic(), 0
        try:
            while chunk := response.raw.read1(self.chunk_size):
                if self.stop.is_set():
                    raise Cancelled(path)
                yield chunk
                window_bytes += len(chunk)
                now = time.monotonic()
                if now - window_start >= window:
                    if window_bytes < least:
                        raise _Transient(f"the connection stalled ({counted(window_bytes, 'byte')} in {window:g} s, "
                                         f"fewer than the {least} fetch requires)")
                    window_start, window_bytes = now, 0
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError):
            raise _Transient("the connection broke mid-body") from None

    def _failure(self, path: str, reason: str, status: int | None = None) -> FileDownloadError:
        return FileDownloadError(f"{self.source}/{path}", reason, status)

    def _discard(self, part: PartFile) -> None:
        """Empty a .part that cannot be continued, reporting its bytes as discarded."""
        self._on_discard(part.restart())

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
        except _UNUSABLE_ADDRESS:
            raise self._failure(path, "the server redirected to an address that cannot be used "
                                      "(or the access URL is malformed)") from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, ValueError) as error:
            raise self._failure(path, f"the request could not be made ({type(error).__name__})") from None
        status = response.status_code
        if status in (200, 206) or (status == 416 and allow_416):
            return response
        response.close()
        reason = f"HTTP {status} {untrusted_text(response.reason or '', self.url)}".rstrip()
        if status in (408, 429) or status >= 500:
            raise _Transient(reason, _retry_after(response))
        hint = {401: "check your access URL", 403: "check your access URL", 404: "the server has no such file"}
        raise self._failure(path, f"the server answered {reason}" + (f" ({hint[status]})" if status in hint else ""),
                            status)

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
                        path, f"{failure.reason} (gave up after {counted(attempt, 'attempt')}; rerun to resume)"
                    ) from None
                wait = self.policy.wait(attempt, failure.retry_after) if failure.retry_after != 0 else 0.0
                log.warning("%s/%s: %s; retrying in %.1f s (%s left)", self.source, path, failure.reason, wait,
                         counted(self.policy.attempts - attempt, "attempt"))
                if self.stop.wait(wait):
                    raise Cancelled(path) from None
        raise AssertionError("unreachable")


def _check_length(size: int, total: int | None) -> None:
    """A body shorter (or longer) than announced is a transient failure: the retry resumes or restarts."""
    if total is not None and size != total:
        raise _Transient(f"the body ended after {size} of {total} bytes")


def _is_html(response: requests.Response) -> bool:
    """Whether the answer says it is a web page (a label only: the body's own checks decide)."""
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower() in _HTML_TYPES


def _content_length(response: requests.Response) -> int | None:
    """Content-Length (None when absent); a malformed one makes the answer malformed."""
    length = response.headers.get("Content-Length")
    if length is None:
        return None
    match = _CONTENT_LENGTH.fullmatch(length.strip(" \t"))
    if not match:
        raise _Transient("the server sent a malformed Content-Length header")
    return int(match.group(1))


def _content_range(response: requests.Response) -> tuple[int, int]:
    """(first byte, total size) of a 206 answer's Content-Range, which must be well-formed and consistent."""
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip(" \t"))
    if not match:
        raise _Transient("a partial answer came without a valid Content-Range")
    first, last, total = (int(group) for group in match.groups())
    if not first <= last < total:
        raise _Transient("a partial answer came with an inconsistent Content-Range")
    return first, total


def _unsatisfied_total(response: requests.Response) -> int | None:
    match = _UNSATISFIED_RANGE.fullmatch(response.headers.get("Content-Range", "").strip(" \t"))
    return int(match.group(1)) if match else None


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (a number or an HTTP date), if the server sent a well-formed one."""
    value = response.headers.get("Retry-After", "").strip(" \t")
    if not value:
        return None
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None
