"""A loopback HTTP proxy in front of Rerun's web viewer that keeps the browser on this machine.

Rerun's web viewer page asks the internet for things (a font, its release on GitHub, an examples list, usage
analytics). Every response of this proxy carries a Content-Security-Policy that lets the page load and connect
to 127.0.0.1 only, so the browser refuses those requests before anything leaves the machine, and the viewer
works offline.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
BLOCK = 1 << 20
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authenticate",
               "proxy-authorization", "content-security-policy"}


def content_security_policy(grpc_port: int) -> str:
    """The policy: scripts, styles, fonts and images from this origin only; connections to it and to the
    recording's gRPC server on 127.0.0.1."""
    return "; ".join([
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        f"connect-src 'self' blob: data: http://{HOST}:{grpc_port}",
    ])


def _handler(upstream_port: int, policy: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._forward(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._forward(body=False)

        def _forward(self, body: bool) -> None:
            connection = http.client.HTTPConnection(HOST, upstream_port, timeout=60)
            try:
                connection.request(self.command, self.path, headers={"Accept-Encoding": "identity"})
                response = connection.getresponse()
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                length = response.getheader("Content-Length")
                chunked = length is None and body
                if length is not None:
                    self.send_header("Content-Length", length)
                elif chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Content-Security-Policy", policy)
                self.end_headers()
                while body:
                    block = response.read(BLOCK)
                    if chunked:
                        self.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
                    else:
                        self.wfile.write(block)
                    if not block:
                        break
            except OSError:
                self.close_connection = True
            finally:
                connection.close()

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet: no request log on stderr
            pass

    return Handler


@contextlib.contextmanager
def csp_proxy(upstream_port: int, grpc_port: int, port: int = 0) -> Iterator[int]:
    """Serve the web viewer at ``upstream_port`` through a proxy on 127.0.0.1 (``port`` 0: a free one) adding
    the content security policy; yields the proxy's port while the block runs."""
    server = ThreadingHTTPServer((HOST, port), _handler(upstream_port, content_security_policy(grpc_port)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
