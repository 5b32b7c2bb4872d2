"""Every command with --scheduler turns a malformed or unreachable scheduler address into one line and exit code 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from crash_campaign import cli_command
from helpers import run_cli


def scheduler_commands(folder: Path) -> dict[str, list[str]]:
    """Each command taking --scheduler, with arguments that pass option parsing (it connects before any work)."""
    root = folder / "root"
    root.mkdir(exist_ok=True)
    store = folder / "store.zarr"
    return {
        "convert": ["convert", str(root), str(store)],
        "downsample": ["downsample", str(store)],
        "export-frames": ["export-frames", str(store), str(folder / "frames")],
        "meshes": ["meshes", str(store)],
        "export-submission": ["export-submission", str(root), str(folder / "submission.zip"), "-b", "nvs"],
    }


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


@pytest.mark.parametrize("command", list(scheduler_commands(Path("."))))
def test_a_malformed_address_is_one_line(command, tmp_path):
    result = run_cli(*scheduler_commands(tmp_path)[command], "--scheduler", "foo")
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        "Error: 'foo' is not a dask scheduler address (missing port number in address 'foo'); "
        "give one like tcp://host:8786, or leave out --scheduler."
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]  # nothing written


def test_an_address_where_no_scheduler_answers_is_one_line_for_every_command(tmp_path):
    with socket.socket() as closed:  # bound but not listening: connections are refused while it is held
        closed.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
        processes = {  # in parallel: each waits for the connection timeout
            name: subprocess.Popen(cli_command(*args, "--scheduler", address), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
            for name, args in scheduler_commands(tmp_path).items()
        }
        outcomes = {name: (process.wait(timeout=120), *process.communicate()) for name, process in processes.items()}
    for name, (returncode, stdout, stderr) in outcomes.items():
        lines = error_lines(stderr)
        assert returncode == 2 and stdout == "", (name, stdout, stderr)
        assert len(lines) == 1 and lines[0].startswith(f"Error: No dask scheduler answered at {address} within"), \
            (name, stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]


@pytest.mark.parametrize("address", ["foo", "tcp://127.0.0.1:9"])
def test_a_failed_connection_leaves_local_dask_computations_working(address):
    # In a fresh process: distributed's event loop keeps state across clients made in one process.
    script = f"""
import dask, dask.array as da
from nersemble_zarr.errors import ConfigError
from nersemble_zarr.parallel import connect
try:
    with connect({address!r}, timeout_s=1):
        raise SystemExit("connected")
except ConfigError:
    pass
assert dask.config.get("scheduler", None) is None, dask.config.get("scheduler")
print(int(da.ones(4, chunks=2).sum().compute()))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["4"], done.stderr[-2000:]
