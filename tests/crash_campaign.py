"""Killing a real ``nersemble-zarr`` process with SIGKILL at a seeded point of its writing.

A kill point is "once the output folder holds N files, wait a few more milliseconds": file counts make
the points spread over the whole write (metadata, coordinates, frame shards, completion flags) whatever
the machine's speed, and the extra delay lands kills between and inside file writes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.002


@dataclass(frozen=True)
class KillPoint:
    """Kill once the output holds ``after_files`` files (more than before the run), ``delay_s`` later."""

    seed: int
    after_files: int
    delay_s: float

    @classmethod
    def draw(cls, seed: int, already: int, expected_total: int) -> "KillPoint":
        """A point between the files already there and the files a complete run leaves."""
        rng = random.Random(seed)
        return cls(seed, rng.randint(already + 1, max(already + 1, expected_total)), rng.uniform(0.0, 0.02))


@dataclass(frozen=True)
class KillOutcome:
    """Where the kill landed: the files present when it was sent, and whether the run had already ended."""

    killed: bool
    files_at_kill: int
    returncode: int
    stderr: str


def count_files(folder: Path) -> int:
    """Files below ``folder`` (0 if it does not exist yet)."""
    return sum(len(files) for _, _, files in os.walk(folder))


def cli_command(*args: str) -> list[str]:
    """The real command line: ``python -m nersemble_zarr.cli ARGS``."""
    return [sys.executable, "-m", "nersemble_zarr.cli", *map(str, args)]


def run_and_kill(command: list[str], output: Path, point: KillPoint, timeout_s: float = 120) -> KillOutcome:
    """Start ``command`` and SIGKILL it at ``point`` (measured on ``output``), or let it end by itself."""
    errors = tempfile.TemporaryFile(mode="w+")  # not a pipe: a full pipe would stall the process
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, text=True)
    deadline = time.monotonic() + timeout_s
    try:
        while process.poll() is None and count_files(output) < point.after_files:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command[3]} did not reach {point.after_files} files in {timeout_s} s")
            time.sleep(POLL_S)
        if process.poll() is None and point.delay_s:
            time.sleep(point.delay_s)
        files = count_files(output)
        killed = process.poll() is None
        if killed:
            process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        errors.seek(0)
        stderr = errors.read()
        errors.close()
    return KillOutcome(killed and process.returncode == -signal.SIGKILL, files, process.returncode, stderr)
