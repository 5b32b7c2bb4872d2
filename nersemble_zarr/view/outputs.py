"""Where a view goes: an ``.rrd`` file (written atomically), Rerun's web viewer served on 127.0.0.1, or a native viewer.

The served and spawned viewers run Rerun's own ``rerun`` program with a private configuration folder in which
Rerun's analytics are disabled (``rerun analytics disable``), so the user's settings are never touched and
the program sends nothing. The web viewer's files come from the installed wheel, through a loopback proxy
(``webproxy``) whose content security policy keeps the browser page from reaching anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..atomic import atomic_path
from ..errors import ConfigError, NersembleError
from .rerun_sdk import rerun
from .webproxy import csp_proxy

APPLICATION_ID = "nersemble_zarr"
HOST = "127.0.0.1"
_WEB = re.compile(r"Hosting a web-viewer at http://127\.0\.0\.1:(\d+)")
_GRPC = re.compile(r"Listening for gRPC connections on 127\.0\.0\.1:(\d+)")
START_TIMEOUT_S = 60


def new_recording(name: str):
    """A fresh ``rr.RecordingStream`` of this application, named ``name`` in the viewer."""
    rr = rerun()
    recording = rr.RecordingStream(APPLICATION_ID, send_properties=True)
    recording.send_recording_name(name)
    return recording


def save_recording(output: str | os.PathLike, name: str, log: Callable[[object], None]) -> Path:
    """Run ``log(recording)`` into the ``.rrd`` file ``output``, written atomically (a failure leaves nothing)."""
    output = Path(output)
    if output.suffix.lower() != ".rrd":
        raise ConfigError(f"{output} does not end in .rrd; Rerun recordings are saved as .rrd files.")
    with atomic_path(output) as temporary:
        recording = new_recording(name)
        recording.save(temporary)
        try:
            log(recording)
        finally:
            recording.flush()
            recording.disconnect()
    return output


def rerun_program() -> str:
    """The ``rerun`` executable of the installed rerun-sdk."""
    rerun()
    import rerun_cli

    program = Path(rerun_cli.__file__).with_name("rerun")
    if program.is_file():
        return str(program)
    found = shutil.which("rerun")
    if found is None:
        raise ConfigError("rerun-sdk's `rerun` program was not found; reinstall it with "
                          "pip install --force-reinstall 'nersemble_zarr[view]'.")
    return found


def analytics_off_environment(folder: str) -> dict[str, str]:
    """Environment variables for a ``rerun`` process whose configuration lives in ``folder``, in which
    ``rerun analytics disable`` has been run."""
    env = {**os.environ, "XDG_CONFIG_HOME": os.path.join(folder, "config"),
           "XDG_DATA_HOME": os.path.join(folder, "data"), "XDG_CACHE_HOME": os.path.join(folder, "cache")}
    done = subprocess.run([rerun_program(), "analytics", "disable"], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise NersembleError(f"`rerun analytics disable` failed: {done.stderr.strip()[-300:]}")
    return env


@contextlib.contextmanager
def private_rerun_environment() -> Iterator[dict[str, str]]:
    """``analytics_off_environment`` in a fresh temporary folder, removed after the block."""
    with tempfile.TemporaryDirectory(prefix="nersemble-zarr-rerun-") as folder:
        yield analytics_off_environment(folder)


@dataclass(frozen=True)
class ServedViewer:
    """A running web viewer: its address (loopback only) and the process serving it."""

    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        """Stop the server (and wait for it)."""
        _stop(self.process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def viewer_url(web_port: int, grpc_port: int) -> str:
    """The web viewer's address, opening the recording served by the gRPC server on 127.0.0.1."""
    return f"http://{HOST}:{web_port}/?url={quote(f'rerun+http://{HOST}:{grpc_port}/proxy', safe='')}"


@contextlib.contextmanager
def serve_web(rrd: str | os.PathLike, *, web_port: int = 0, grpc_port: int = 0) -> Iterator[ServedViewer]:
    """Serve the recording ``rrd`` with Rerun's web viewer on 127.0.0.1 only (``web_port`` for the page and
    ``grpc_port`` for the data; 0: free ones) while the block runs; yields the viewer with its address."""
    with private_rerun_environment() as env:
        command = [rerun_program(), "--serve-web", "--bind", HOST, "--port", str(grpc_port),
                   "--web-viewer-port", "0", str(rrd)]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   stdin=subprocess.DEVNULL)
        try:
            ports = _wait_for_ports(process)
            with csp_proxy(ports["web"], ports["grpc"], web_port) as proxy_port:
                yield ServedViewer(viewer_url(proxy_port, ports["grpc"]), process)
        finally:
            _stop(process)


def _wait_for_ports(process: subprocess.Popen) -> dict[str, int]:
    """Read the server's output until it names both ports; keep draining it afterwards."""
    ports: dict[str, int] = {}
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in process.stdout:
            seen.append(line)
            for name, pattern in (("web", _WEB), ("grpc", _GRPC)):
                match = pattern.search(line)
                if match:
                    ports[name] = int(match.group(1))
            if len(ports) == 2:
                found.set()
        found.set()

    threading.Thread(target=read, daemon=True).start()
    found.wait(START_TIMEOUT_S)
    if len(ports) != 2:
        process.kill()
        raise NersembleError("Rerun's web viewer did not start: " + "".join(seen)[-500:].strip())
    return ports


def spawn_recording(name: str, log: Callable[[object], None]) -> None:
    """Start Rerun's native viewer (it needs a display) listening on 127.0.0.1, analytics disabled, and stream
    ``log(recording)`` to it. The viewer keeps running after this returns."""
    # The viewer outlives this process, so its private configuration folder is left in the temporary folder.
    env = analytics_off_environment(tempfile.mkdtemp(prefix="nersemble-zarr-rerun-"))
    port = _free_port()
    process = subprocess.Popen([rerun_program(), "--bind", HOST, "--port", str(port), "--expect-data-soon"],
                               env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_until_listening(process, port)
    recording = new_recording(name)
    recording.connect_grpc(f"rerun+http://{HOST}:{port}/proxy")
    try:
        log(recording)
    finally:
        recording.flush()
        recording.disconnect()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _wait_until_listening(process: subprocess.Popen, port: int) -> None:
    """Wait until the viewer accepts connections on ``port``; a viewer that exits first is an error."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            reason = process.stderr.read().strip().splitlines()[-1:] if process.stderr else []
            raise NersembleError(f"Rerun's viewer exited at once (exit code {process.returncode}"
                                 f"{': ' + reason[0][-200:] if reason else ''}); it needs a display. "
                                 "Use --serve (a browser) or --save instead.")
        with socket.socket() as probe:
            if probe.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.2)
    process.kill()
    raise NersembleError(f"Rerun's viewer did not start listening on {HOST}:{port} within {START_TIMEOUT_S} s.")


def wait_until_interrupted(served: ServedViewer) -> None:
    """Block until Ctrl-C or the server's end."""
    try:
        served.process.wait()
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
