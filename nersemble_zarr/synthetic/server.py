"""A loopback HTTP server that serves a folder like the benchmark server, with switches that inject faults.

``with serve(root, faults=Faults(...)) as server:`` starts a threaded server on 127.0.0.1 at a random free
port. ``server.url`` ends in a random secret-looking path segment, like the real access URL; requests
without it are refused, so tests can prove the secret never leaks. It answers HEAD (Content-Length),
GET and single byte-range requests (206 + Content-Range, 416 out of range), and records every request in
``server.requests`` (method, path without the secret, Range header, status, body bytes sent); reading it
waits until the requests being answered are recorded, so a test sees every request it has had an answer to.
``access_urls(server)`` names the URLs a client is given: the benchmarks', and the synthetic dataset's if served.
"""

from __future__ import annotations

import fnmatch
import gzip
import os
import random
import re
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Literal
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from ..sources.base import BENCHMARK_ACCESS, DATASET_ACCESS
from .dataset_config import DATASET_FOLDER

SEND_CHUNK = 1 << 20
_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")  # ASCII digits only, int64-sized
WEB_PAGE = b"<!DOCTYPE html><html><body>Session expired</body></html>\n"


@dataclass
class Faults:
    """What the server does wrong. Every switch is off by default; ``paths`` limits them to some files.

    Counted faults ("the first k requests") count per relative path, or over all paths with
    ``scope="global"``. Random faults draw from ``random.Random(seed)``, so a run is reproducible.
    """

    paths: tuple[str, ...] = ()  # fnmatch patterns of relative paths (e.g. "nvs/*.mp4"); empty = every path
    scope: Literal["path", "global"] = "path"
    # Cut the connection after this many body bytes, for the first ``drop_requests`` GETs (None = every GET).
    drop_after_bytes: int | None = None
    drop_requests: int | None = 1
    # Answer ``error_status`` (500, 503, 429, ...) to the first ``error_requests`` requests of ``error_methods``.
    error_status: int = 503
    error_requests: int = 0
    error_methods: tuple[str, ...] = ("HEAD", "GET")
    retry_after: float | None = None  # seconds sent as Retry-After with 429 and 503 answers
    error_rate: float = 0.0  # probability that a request of ``error_methods`` gets ``error_status``, from ``seed``
    seed: int = 0
    ignore_range: bool = False  # answer Range requests with 200 and the full body
    short_body_bytes: int = 0  # every GET promises the full Content-Length but omits this many final bytes
    bytes_per_second: float | None = None  # throttle GET bodies
    delay_s: float = 0.0  # wait before answering each request
    # Hostile answers (a captive portal, an expired link, a misconfigured or malicious server):
    reason_suffix: str = ""  # appended to every error answer's reason phrase and body; "{path}" = the raw request path
    web_page: bool = False  # answer HEAD and GET with 200 and a small web page instead of the file
    web_page_type: str = "text/html; charset=utf-8"  # the Content-Type of that page
    content_encoding: str | None = None  # "gzip": send the file gzip-compressed with this Content-Encoding
    overlong_bytes: int = 0  # GETs send the file, then this many zero bytes, without Content-Length
    no_content_length: bool = False  # HEAD and GET answer without Content-Length; GET bodies end by closing
    redirect_to: str | None = None  # answer 302 with this Location; "{path}" = the raw request path
    # (name, value) pairs replacing those headers' values in every answer (e.g. ("Content-Length", "²"))
    header_values: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RequestRecord:
    """One answered request as the server saw it."""

    method: str
    path: str  # relative to the served folder, without the secret prefix
    range: str | None
    status: int
    bytes_sent: int


@dataclass
class _FaultState:
    """Counters and random generator behind the counted and random faults."""

    faults: Faults
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.faults.seed)

    def applies(self, path: str) -> bool:
        return not self.faults.paths or any(fnmatch.fnmatchcase(path, p) for p in self.faults.paths)

    def count(self, kind: str, path: str) -> int:
        """Increment and return how often ``kind`` was seen (per path or globally)."""
        key = (kind, "" if self.faults.scope == "global" else path)
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]


class BenchmarkServer(ThreadingHTTPServer):
    """The running server: ``url``, ``requests`` (a list of RequestRecord) and settable ``faults``."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, root: Path, faults: Faults | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = Path(root).resolve()
        self.token = secrets.token_urlsafe(18)
        self._log: list[tuple[int, RequestRecord]] = []  # (arrival number, record), appended when answered
        self._arrivals = 0
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._in_flight = 0
        self._state = _FaultState(faults or Faults())
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, ending in the secret path segment (no trailing slash)."""
        return f"http://127.0.0.1:{self.server_address[1]}/{self.token}"

    @property
    def faults(self) -> Faults:
        return self._state.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._lock:
            self._state = _FaultState(faults)

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log in the order the requests arrived, once requests being answered right now are
        recorded (waits up to 5 s). A cut answer is recorded after its connection closes, so a client's next
        request may be answered first: the arrival number keeps the order the client saw."""
        with self._settled:
            self._settled.wait_for(lambda: self._in_flight == 0, timeout=5)
            return [record for _, record in sorted(self._log, key=lambda entry: entry[0])]

    def clear_log(self) -> None:
        with self._settled:
            self._settled.wait_for(lambda: self._in_flight == 0, timeout=5)
            self._log.clear()

    def start(self) -> "BenchmarkServer":
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut open keep-alive connections and wait for the serving thread."""
        self._stopping.set()
        self.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def handle_error(self, request, client_address) -> None:
        """Clients hanging up mid-answer are normal here (tests time out and cut connections on purpose)."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def __enter__(self) -> "BenchmarkServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ---- used by the handler
    def _record(self, arrival: int, record: RequestRecord) -> None:
        with self._lock:
            self._log.append((arrival, record))

    def _answering(self, started: bool) -> int:
        """Count a request in (its arrival number) or out."""
        with self._settled:
            self._in_flight += 1 if started else -1
            self._arrivals += started
            self._settled.notify_all()
            return self._arrivals

    def _track(self, connection: socket.socket, active: bool) -> None:
        with self._lock:
            (self._connections.add if active else self._connections.discard)(connection)

    def _decide_error(self, method: str, path: str) -> int | None:
        """The error status this request gets, if a counted or random error fault hits it."""
        with self._lock:
            state = self._state
            faults = state.faults
            if not state.applies(path) or method not in faults.error_methods:
                return None
            if faults.error_requests and state.count("error", path) <= faults.error_requests:
                return faults.error_status
            if faults.error_rate and state.rng.random() < faults.error_rate:
                return faults.error_status
        return None

    def _drop_limit(self, path: str) -> int | None:
        """Body bytes after which this GET's connection is cut, if the drop fault hits it."""
        with self._lock:
            state = self._state
            faults = state.faults
            if faults.drop_after_bytes is None or not state.applies(path):
                return None
            if faults.drop_requests is not None and state.count("drop", path) > faults.drop_requests:
                return None
            return faults.drop_after_bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: BenchmarkServer
    timeout = 10  # idle keep-alive connections end on their own
    # TCP_NODELAY, as web servers set it on keep-alive connections: else a body's last small write waits for the
    # client's delayed ACK of the headers, and every GET on a reused connection costs 40 ms more.
    disable_nagle_algorithm = True
    _replaced: dict[str, str] = {}  # the header_values fault of the request being answered
    _arrival = 0  # this request's arrival number in the server's log

    def send_header(self, keyword: str, value: str) -> None:
        super().send_header(keyword, self._replaced.get(keyword, value))

    def setup(self) -> None:
        super().setup()
        self.server._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server._track(self.connection, False)

    def log_message(self, format: str, *args) -> None:  # keep test output clean; the log is server.requests
        pass

    def do_HEAD(self) -> None:
        self._answer_counted(head=True)

    def do_GET(self) -> None:
        self._answer_counted(head=False)

    def _answer_counted(self, head: bool) -> None:
        self._arrival = self.server._answering(True)
        try:
            self._answer(head)
        finally:
            self.server._answering(False)

    # ------------------------------------------------------------------ request handling
    def _answer(self, head: bool) -> None:
        method = "HEAD" if head else "GET"
        range_header = self.headers.get("Range")
        self._replaced = {}
        relative = self._relative_path()
        if relative is None:
            return self._refuse(403, method, "<no secret>", range_header)
        faults = self.server.faults
        applies = self.server._state.applies(relative)
        self._replaced = dict(faults.header_values) if applies else {}
        if faults.delay_s and applies and self._sleep(faults.delay_s):
            return
        if applies and faults.redirect_to is not None:
            return self._redirect(method, relative, range_header, faults.redirect_to.replace("{path}", self.path))
        if applies and faults.web_page:
            return self._send_whole(method, relative, range_header, WEB_PAGE, faults.web_page_type)
        file = self._resolve(relative)
        if file is None:
            return self._refuse(404, method, relative, range_header)
        error = self.server._decide_error(method, relative)
        if error is not None:
            return self._refuse(error, method, relative, range_header, retry_after=faults.retry_after)
        if applies and faults.content_encoding:
            body = gzip.compress(file.read_bytes(), mtime=0)
            return self._send_whole(method, relative, range_header, body, "application/octet-stream",
                                    faults.content_encoding)

        size = file.stat().st_size
        start, end = 0, size  # half-open byte interval of the body
        status = 200
        honour_range = not (faults.ignore_range and applies)
        if range_header and honour_range:
            parsed = _parse_range(range_header, size)
            if parsed == "unsatisfiable":
                return self._refuse(416, method, relative, range_header, content_range=f"bytes */{size}")
            if parsed is not None:
                start, end = parsed
                status = 206
        overlong = faults.overlong_bytes if applies and not head else 0
        announce = not (applies and faults.no_content_length) and not overlong
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if announce:
            self.send_header("Content-Length", str(end - start))
        elif not head:  # the body ends when the connection closes
            self.send_header("Connection", "close")
            self.close_connection = True
        self.send_header("Accept-Ranges", "bytes" if honour_range else "none")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        sent = 0 if head else self._send_body(file, start, end, relative)
        if overlong and sent == end - start:
            sent += self._send_zeros(overlong)
        self.server._record(self._arrival, RequestRecord(method, relative, range_header, status, sent))

    def _send_whole(self, method: str, relative: str, range_header: str | None, body: bytes, content_type: str,
                    encoding: str | None = None) -> None:
        """Answer 200 with ``body`` (Range ignored), e.g. a web page or a compressed file."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method == "GET":
            self.wfile.write(body)
        sent = len(body) if method == "GET" else 0
        self.server._record(self._arrival, RequestRecord(method, relative, range_header, 200, sent))

    def _redirect(self, method: str, relative: str, range_header: str | None, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.server._record(self._arrival, RequestRecord(method, relative, range_header, 302, 0))

    def _send_zeros(self, count: int) -> int:
        """Send ``count`` zero bytes after a body (until the client hangs up); the bytes sent."""
        sent = 0
        try:
            while sent < count:
                chunk = bytes(min(SEND_CHUNK, count - sent))
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:  # the client stopped reading, as it should
            pass
        return sent

    def _relative_path(self) -> str | None:
        """The request path below the secret segment, or None when the secret is missing or wrong."""
        path = unquote(urlsplit(self.path).path)
        prefix = f"/{self.server.token}/"
        if not path.startswith(prefix):
            return None
        return path[len(prefix):]

    def _resolve(self, relative: str) -> Path | None:
        """The served file for a relative path, or None if absent or outside the served folder."""
        candidate = (self.server.root / relative).resolve()
        if not candidate.is_relative_to(self.server.root) or not candidate.is_file():
            return None
        return candidate

    def _refuse(self, status: int, method: str, path: str, range_header: str | None, *,
                retry_after: float | None = None, content_range: str | None = None) -> None:
        reason = self.responses.get(status, ("",))[0]
        if self.server._state.applies(path):
            reason += self.server.faults.reason_suffix.replace("{path}", self.path)
        body = f"{status} {reason}\n".encode("latin-1", "replace")
        self.send_response(status, reason)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if retry_after is not None and status in (429, 503):
            self.send_header("Retry-After", f"{retry_after:g}")
        if content_range:
            self.send_header("Content-Range", content_range)
        self.end_headers()
        if method == "GET":
            self.wfile.write(body)
        sent = len(body) if method == "GET" else 0
        self.server._record(self._arrival, RequestRecord(method, path, range_header, status, sent))

    def _send_body(self, file: Path, start: int, end: int, relative: str) -> int:
        """Write bytes [start, end) of ``file``, applying drop, short-body and throttle faults; bytes sent."""
        faults = self.server.faults
        stop_at = end
        if faults.short_body_bytes and self.server._state.applies(relative):
            stop_at = max(start, end - faults.short_body_bytes)
        drop = self.server._drop_limit(relative)
        if drop is not None:
            stop_at = min(stop_at, start + drop)
        rate = faults.bytes_per_second if self.server._state.applies(relative) else None
        sent = 0
        began = time.monotonic()
        try:
            with open(file, "rb") as handle:
                handle.seek(start)
                for chunk in _chunks(handle, stop_at - start, rate):
                    # pace by deadline: this chunk is out no earlier than (bytes so far) / rate after the start
                    if rate and self._sleep(max(0.0, began + (sent + len(chunk)) / rate - time.monotonic())):
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
            if sent < end - start:  # cut short (fault or shutdown): end the connection so the client sees it
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_WR)
        except OSError:  # the client went away
            self.close_connection = True
        return sent

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; True if it is."""
        return self.server._stopping.wait(seconds)


def _chunks(handle, length: int, rate: float | None) -> Iterator[bytes]:
    """Read ``length`` bytes from ``handle`` in chunks small enough to throttle smoothly."""
    size = SEND_CHUNK if not rate else max(1, min(SEND_CHUNK, int(rate / 20)))
    remaining = length
    while remaining > 0:
        chunk = handle.read(min(size, remaining))
        if not chunk:
            return
        remaining -= len(chunk)
        yield chunk


def _parse_range(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """Half-open interval of a single ``bytes=`` range; None to ignore the header (as HTTP allows)."""
    match = _RANGE.fullmatch(header.strip(" \t"))
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        length = int(last)
        if length == 0:
            return "unsatisfiable"
        return max(0, size - length), size
    start = int(first)
    stop = size if last == "" else min(size, int(last) + 1)
    if start >= size or stop <= start:
        return "unsatisfiable"
    return start, stop


def access_urls(server: BenchmarkServer) -> dict[str, str]:
    """Environment variable -> access URL of what ``server`` serves: the benchmarks' (its URL), and when the
    served folder holds the synthetic dataset (``dataset/``), the dataset's: ``{url}/dataset``, whose root holds
    the two CSVs and the participant folders, like the real dataset's own URL."""
    urls = {BENCHMARK_ACCESS.env_var: server.url}
    if (server.root / DATASET_FOLDER).is_dir():
        urls[DATASET_ACCESS.env_var] = f"{server.url}/{DATASET_FOLDER}"
    return urls


def serve(root: str | os.PathLike, faults: Faults | None = None) -> BenchmarkServer:
    """Start serving ``root`` on 127.0.0.1 at a free port; use as ``with serve(root) as server:``."""
    if not Path(root).is_dir():
        raise ConfigError(f"Cannot serve {root}: it is not a folder.")
    return BenchmarkServer(Path(root), faults).start()
